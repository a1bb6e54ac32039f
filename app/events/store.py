"""The SQLite event store: append (with projections in the same transaction), read, and live tail.

Durability: WAL with synchronous=NORMAL. A commit is written to the WAL file before `append` returns,
so a daemon killed with SIGKILL right after loses nothing (the OS holds the write); only a power cut
can drop the last transactions, which FULL would also protect at 4x the cost per append (measured in
../shared/RUNTIME-FACTS.md and bench/api.py).

Concurrency: one writer connection behind a lock (SQLite allows one writer anyway), one reader
connection per thread (WAL readers never block the writer). A thread's reader goes back to a small
idle pool when the thread ends: each stream has a short-lived thread of its own, and readers kept per
thread for good left two connections (~300 KiB of SQLite memory) behind every `docker run`. `seq` is
assigned inside the writer lock, so a reader that saw seq N has seen every seq below it: /events can
replay by `seq > cursor` and then tail without a gap.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from typing import Callable, Iterable, Sequence

import sqlite_utils

from app.errors import ConcurrentChange, Conflict
from app.events.model import Event, NewEvent
from app.events.upcasters import CURRENT_SCHEMA, upcast

CHECKPOINT_SECONDS = 1.0
IDLE_READERS = 16   # readers of ended threads kept for the next threads; the rest are closed
EVENT_COLUMNS = "seq, time_nano, type, action, actor_id, attributes, stream, version, schema, payload"


def _table_of(err: sqlite3.IntegrityError) -> str:
    """"UNIQUE constraint failed: containers.name" -> "containers"."""
    text = str(err)
    return text.rpartition(": ")[2].partition(".")[0] or "a"


class EventStore:
    def __init__(self, path: str, projectors: Sequence = ()):
        self.path = path
        self.projectors = list(projectors)
        self._write_lock = threading.Lock()
        self._new_event = threading.Condition()
        self._local = threading.local()
        self._readers: set[sqlite3.Connection] = set()     # open readers, in use or idle
        self._idle: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._stop_checkpoints = threading.Event()
        self._writer = self._connect()
        # Checkpoints (WAL -> database, with fsyncs) run on a background thread instead of inside
        # whichever append crosses the 1000-page mark: ~25% of append latency (bench/api.py).
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self.db = sqlite_utils.Database(self._writer)
        self._create_schema()
        row = self._writer.execute("SELECT MAX(seq), MAX(time_nano) FROM events").fetchone()
        self.last_seq = row[0] or 0
        self._last_time_nano = row[1] or 0
        from app.projections import ensure_current  # late import: projections import this module's types
        ensure_current(self)
        self._checkpointer: threading.Thread | None = None

    def start(self) -> None:
        """Start the background checkpoints (the engine's boot phase; a store never started works,
        it only leaves its WAL to grow until close)."""
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="wal-checkpoint", daemon=True)
        self._checkpointer.start()

    # ---------------------------------------------------------------- schema and connections

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.row_factory = sqlite3.Row
        return conn

    def _create_schema(self) -> None:
        events = self.db["events"]
        if not events.exists():
            events.create(
                {
                    "seq": int, "time_nano": int, "type": str, "action": str, "actor_id": str,
                    "attributes": str, "stream": str, "version": int, "schema": int, "payload": str,
                },
                pk="seq",
                not_null={"time_nano", "type", "action", "actor_id", "attributes", "stream", "version", "schema"},
            )
            # The only secondary index: every other index costs each append a B-tree write (measured
            # in bench/api.py). Time bounds become seq bounds by binary search (time order = seq
            # order), and type/action filters run over a seq range.
            events.create_index(["stream", "version"], unique=True)
            # The log is append-only: the database itself refuses edits and deletions.
            self._writer.executescript(
                """
                CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                """
            )

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (taken from the idle pool or opened on first use; given back
        when the thread ends)."""
        lease = getattr(self._local, "lease", None)
        if lease is None:
            with self._readers_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
                with self._readers_lock:
                    self._readers.add(conn)
            lease = self._local.lease = _ReaderLease(self, conn)
        return lease.conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """A thread that had `conn` has ended (its thread-local value was dropped)."""
        with self._readers_lock:
            if conn not in self._readers:
                return                  # closed by close()
            if not self._closed and len(self._idle) < IDLE_READERS:
                self._idle.append(conn)
                return
            self._readers.discard(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass

    @property
    def open_readers(self) -> int:
        with self._readers_lock:
            return len(self._readers)

    def query(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        return self.reader().execute(sql, tuple(params)).fetchall()

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_SECONDS):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        with self._new_event:
            self._new_event.notify_all()
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._readers.clear()
            self._idle.clear()
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()

    # ---------------------------------------------------------------- append

    def append(self, events: Sequence[NewEvent], guard: Callable[[sqlite3.Connection], None] | None = None
               ) -> list[Event]:
        """Append events atomically and apply every projector to them in the same transaction.

        `guard(conn)` runs first, inside the transaction (BEGIN IMMEDIATE: no other writer can come
        between its reads and the append), and raises to refuse the append — cross-stream rules such
        as a unique container name or an image in use are checked there, against the projections as
        they are at that instant, not against a lock in this process.

        Raises ConcurrentChange when an event's expected_version is not its stream's current version,
        and Conflict when a projector refuses an event (a unique key taken).
        """
        if not events:
            return []
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                if guard is not None:
                    guard(conn)
                stored = [self._insert(conn, ev) for ev in events]
                for ev in stored:
                    for projector in self.projectors:
                        projector.apply(conn, ev)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as err:
                conn.execute("ROLLBACK")
                raise Conflict(f"refused by the {_table_of(err)} read model: {err}") from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.last_seq = stored[-1].seq
            self._last_time_nano = stored[-1].time_nano
        with self._new_event:
            self._new_event.notify_all()
        return stored

    def _insert(self, conn: sqlite3.Connection, ev: NewEvent) -> Event:
        current = conn.execute(
            "SELECT MAX(version) FROM events WHERE stream = ?", (ev.stream,)
        ).fetchone()[0] or 0
        if ev.expected_version is not None and ev.expected_version != current:
            raise ConcurrentChange(
                f"concurrent change of {ev.stream}: expected version {ev.expected_version}, found {current}"
            )
        # Strictly increasing timestamps keep time order identical to seq order, so a time bound
        # can be turned into a seq bound.
        time_nano = max(time.time_ns(), self._last_time_nano + 1)
        self._last_time_nano = time_nano
        payload_json = None if ev.payload is None else json.dumps(ev.payload, separators=(",", ":"))
        cur = conn.execute(
            "INSERT INTO events (time_nano, type, action, actor_id, attributes, stream, version, schema, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time_nano, ev.type, ev.action, ev.actor_id, json.dumps(ev.attributes, separators=(",", ":")),
             ev.stream, current + 1, CURRENT_SCHEMA, payload_json),
        )
        return Event(
            seq=cur.lastrowid, time_nano=time_nano, type=ev.type, action=ev.action, actor_id=ev.actor_id,
            attributes=dict(ev.attributes), stream=ev.stream, version=current + 1,
            payload=ev.payload,
        )

    def stream_version(self, stream: str) -> int:
        row = self.reader().execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,)).fetchone()
        return row[0] or 0

    # ---------------------------------------------------------------- read

    @staticmethod
    def row_to_event(row, with_payload: bool = True) -> Event:
        attributes = json.loads(row["attributes"])
        payload = json.loads(row["payload"]) if with_payload and row["payload"] is not None else None
        if row["schema"] != CURRENT_SCHEMA:
            attributes, payload = upcast(row["type"], row["action"], row["schema"], attributes, payload)
        return Event(
            seq=row["seq"], time_nano=row["time_nano"], type=row["type"], action=row["action"],
            actor_id=row["actor_id"], attributes=attributes, stream=row["stream"], version=row["version"],
            payload=payload,
        )

    def read(self, after_seq: int = 0, upto_seq: int | None = None, types: Sequence[str] | None = None,
             actions: Sequence[str] | None = None, limit: int = 1000, conn: sqlite3.Connection | None = None,
             with_payload: bool = False) -> list[Event]:
        """Events with after_seq < seq <= upto_seq in seq order, optionally narrowed by type/action."""
        where, params = ["seq > ?"], [after_seq]
        if upto_seq is not None:
            where.append("seq <= ?")
            params.append(upto_seq)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        if actions:
            where.append(f"action IN ({','.join('?' * len(actions))})")
            params.extend(actions)
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        params.append(limit)
        rows = (conn or self.reader()).execute(sql, params).fetchall()
        return [self.row_to_event(r, with_payload) for r in rows]

    def stream_event(self, stream: str, action: str, after_seq: int = 0, newest: bool = False) -> Event | None:
        """The first (or, with `newest`, the latest) event of `action` in `stream` after `after_seq`.
        Uses the (stream, version) index: a stream is short next to the log."""
        order = "DESC" if newest else "ASC"
        row = self.reader().execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream=? AND seq>? AND action=? ORDER BY version {order}"
            " LIMIT 1", (stream, after_seq, action)).fetchone()
        return self.row_to_event(row) if row is not None else None

    def stream_event_at(self, stream: str, version: int) -> Event | None:
        """The event at `version` of `stream` (1 = the stream's first), payload included."""
        row = self.reader().execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE stream=? AND version=?",
                                    (stream, version)).fetchone()
        return self.row_to_event(row) if row is not None else None

    def iter_all(self, conn: sqlite3.Connection | None = None, batch: int = 20000):
        """Every event in seq order, with payloads, read in batches (used by projection replay)."""
        after = 0
        conn = conn or self.reader()
        while True:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, batch)
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield self.row_to_event(row)
            after = rows[-1]["seq"]

    def wait_for_events(self, after_seq: int, timeout: float) -> bool:
        """Block until an event with seq > after_seq exists (True) or the timeout passes (False)."""
        with self._new_event:
            if self.last_seq > after_seq or self._closed:
                return self.last_seq > after_seq
            self._new_event.wait(timeout)
            return self.last_seq > after_seq

    def barrier(self) -> None:
        """Return once every append that had started before this call has committed."""
        with self._write_lock:
            pass

    def wake_waiters(self) -> None:
        with self._new_event:
            self._new_event.notify_all()

    def first_seq_at_or_after(self, time_nano: int) -> int:
        """The first seq stamped at or after `time_nano` (last_seq + 1 if none).

        Seqs are contiguous (no event is ever deleted) and time order equals seq order, so this is a
        binary search of point lookups on the primary key: ~20 for a million events.
        """
        conn = self.reader()
        lo, hi = 1, self.last_seq + 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = conn.execute("SELECT time_nano FROM events WHERE seq = ?", (mid,)).fetchone()
            if row is None or row[0] >= time_nano:
                hi = mid
            else:
                lo = mid + 1
        return lo


class _ReaderLease:
    """A thread's hold on a reader, stored in the store's thread-local: when the thread ends Python
    drops its thread-local values, and this gives the connection back."""

    __slots__ = ("store", "conn")

    def __init__(self, store: EventStore, conn: sqlite3.Connection):
        self.store = weakref.ref(store)     # a lease must not keep a store alive
        self.conn = conn

    def __del__(self):
        store = self.store()
        if store is None:
            return
        try:
            store._give_back(self.conn)
        except Exception:               # interpreter shutdown: nothing left to give back to
            pass
