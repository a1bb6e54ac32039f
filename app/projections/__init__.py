"""Read models derived only from the event log.

Each projector owns some tables and an `apply(conn, event)` that moves them for one event; the store
calls it inside the append transaction. `rebuild` drops the tables and replays the whole log through
the same `apply`, so incremental and replayed state cannot drift apart by construction — and a test
on random event sequences checks that they do not.
"""
from __future__ import annotations

import sqlite3

from app.projections.containers import ContainersProjector
from app.projections.execs import ExecsProjector
from app.projections.images import ImagesProjector
from app.projections.networks import NetworksProjector
from app.projections.volumes import VolumesProjector


def all_projectors() -> list:
    return [ContainersProjector(), ImagesProjector(), VolumesProjector(), ExecsProjector(), NetworksProjector()]


META_TABLE = "projection_meta"


def _create(conn: sqlite3.Connection, projectors) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for p in projectors:
        for statement in p.schema:
            conn.execute(statement)
        conn.execute(f"INSERT OR REPLACE INTO {META_TABLE} (name, version) VALUES (?, ?)", (p.name, p.version))


def _drop(conn: sqlite3.Connection, projectors) -> None:
    for p in projectors:
        for table in p.tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"DROP TABLE IF EXISTS {META_TABLE}")


def rebuild(store) -> int:
    """Drop every projection table and replay the log into fresh ones. Returns the events replayed."""
    count = 0
    with store._write_lock:
        conn = store._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            _drop(conn, store.projectors)
            _create(conn, store.projectors)
            for event in store.iter_all(conn=conn):
                for p in store.projectors:
                    p.apply(conn, event)
                count += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return count


def ensure_current(store) -> None:
    """At open: create missing projections, and rebuild when a projector's schema version changed."""
    conn = store._writer
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (META_TABLE,)).fetchone()
    stored = dict(conn.execute(f"SELECT name, version FROM {META_TABLE}").fetchall()) if has_meta else {}
    wanted = {p.name: p.version for p in store.projectors}
    if stored != wanted and store.projectors:
        rebuild(store)


def snapshot(conn: sqlite3.Connection, projectors) -> dict:
    """Every projection row, ordered: what a rebuild must reproduce exactly."""
    out = {}
    for p in projectors:
        for table in p.tables:
            out[table] = [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    return out
