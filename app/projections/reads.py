"""How read-model queries reach SQLite: through the store's per-thread reader, or through the writer
connection of an append in progress (a guard, app/events/store.py append, reads what it is about
to change)."""
from __future__ import annotations

import sqlite3


def query(db, sql: str, params=()) -> list:
    if isinstance(db, sqlite3.Connection):
        return db.execute(sql, tuple(params)).fetchall()
    return db.query(sql, params)
