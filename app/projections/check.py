"""The projections against a fresh replay: the log is replayed into a scratch in-memory database by the
same projectors and every table is compared row by row with the one the store keeps up to date.

Both sides are read inside one read transaction of the store's database, so a daemon appending
meanwhile cannot make them disagree: the snapshot and the events replayed are of the same moment.
"""
from __future__ import annotations

import sqlite3
from collections import Counter

from app.events.store import EVENT_COLUMNS, EventStore
from app.projections import _create, snapshot


def _events(conn: sqlite3.Connection, batch: int = 20000):
    after = 0
    while True:
        rows = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                            (after, batch)).fetchall()
        if not rows:
            return
        for row in rows:
            yield EventStore.row_to_event(row)
        after = rows[-1]["seq"]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _render(columns: list[str], row: tuple) -> str:
    return ", ".join(f"{c}={v!r}" for c, v in zip(columns, row))


def replay_differences(conn: sqlite3.Connection, projectors) -> tuple[int, list[str]]:
    """(events replayed, one line per row that only one side has). `conn` is a connection to the
    store's database (read-only is enough) with sqlite3.Row rows; the caller holds no transaction."""
    scratch = sqlite3.connect(":memory:")
    scratch.row_factory = sqlite3.Row
    conn.execute("BEGIN")           # a read transaction: the snapshot and the replay see one moment
    try:
        kept = snapshot(conn, projectors)
        _create(scratch, projectors)
        count = 0
        for event in _events(conn):
            for p in projectors:
                p.apply(scratch, event)
            count += 1
        fresh = snapshot(scratch, projectors)
    finally:
        conn.execute("ROLLBACK")
    out = []
    for table in kept:
        columns = _columns(scratch, table)
        only_kept = Counter(kept[table]) - Counter(fresh[table])
        only_fresh = Counter(fresh[table]) - Counter(kept[table])
        for row in sorted(only_kept, key=repr):
            out.append(f"projection {table}: row not in a fresh replay: {_render(columns, row)}")
        for row in sorted(only_fresh, key=repr):
            out.append(f"projection {table}: a fresh replay has a row the projection lacks: {_render(columns, row)}")
    scratch.close()
    return count, out
