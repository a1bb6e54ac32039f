"""The exec instances read model (`GET /exec/{id}/json`, a container's ExecIDs), moved only by events.

Each exec has a stream of its own, `exec:<exec id>`: `exec_create: CMD ARGS` (version 1, the exec's
configuration in its payload), `exec_start: CMD ARGS` (version 2, the pid), then `exec_die` (exitCode)
or berth's own `exec-failed` (runc refused to start it: its exit code and message). Docker's events
are of type container with the container as actor and `execID` in their attributes, and their
action carries the command (moby daemon/exec.go); the projector matches the action's first word.
A container's `destroy` drops its execs, as moby forgets them with the container.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from app.events.model import Event
from app.projections.reads import query as _query

EXEC_STATES = ("created", "running", "exited")


def exec_action(action: str) -> str:
    """`exec_start: sh -c ls` → `exec_start`."""
    return action.split(":", 1)[0]


class ExecsProjector:
    name = "execs"
    version = 1
    tables = ("execs",)
    schema = (
        """CREATE TABLE IF NOT EXISTS execs (
            id TEXT PRIMARY KEY,
            container_id TEXT NOT NULL,
            created_nano INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'created',
            pid INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            config TEXT NOT NULL DEFAULT '{}',
            error TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX IF NOT EXISTS execs_container ON execs (container_id, state)",
    )

    def apply(self, conn, ev: Event) -> None:
        if ev.type != "container":
            return
        if ev.action == "destroy":
            conn.execute("DELETE FROM execs WHERE container_id=?", (ev.actor_id,))
            return
        if not ev.stream.startswith("exec:"):
            return
        eid = ev.stream[len("exec:"):]
        action = exec_action(ev.action)
        payload = ev.payload or {}
        if action == "exec_create":
            conn.execute("INSERT INTO execs (id, container_id, created_nano, config) VALUES (?, ?, ?, ?)",
                         (eid, ev.actor_id, ev.time_nano, json.dumps(payload.get("config", {}), sort_keys=True)))
        elif action == "exec_start":
            conn.execute("UPDATE execs SET state='running', pid=? WHERE id=? AND state='created'",
                         (int(payload.get("pid", 0)), eid))
        elif action == "exec_die":
            try:
                code = int(ev.attributes.get("exitCode", "0"))
            except ValueError:
                code = 255
            conn.execute("UPDATE execs SET state='exited', exit_code=? WHERE id=?", (code, eid))
        elif action == "exec-failed":
            conn.execute("UPDATE execs SET state='exited', exit_code=?, error=? WHERE id=?",
                         (int(payload.get("exit_code", 126)), payload.get("error", ""), eid))
        conn.execute("UPDATE execs SET version=? WHERE id=?", (ev.version, eid))


# ------------------------------------------------------------------------------------------ read side

@dataclass(frozen=True)
class Exec:
    id: str
    container_id: str
    created_nano: int
    state: str                  # created, running, exited
    pid: int
    exit_code: int | None       # None until it has exited, as moby's *int
    config: dict                # entrypoint, args, tty, privileged, user, env, working_dir, open_*, …
    error: str
    version: int                # of the exec's stream

    @property
    def running(self) -> bool:
        return self.state == "running"


def _exec(row) -> Exec:
    return Exec(id=row["id"], container_id=row["container_id"], created_nano=row["created_nano"],
                state=row["state"], pid=row["pid"], exit_code=row["exit_code"], config=json.loads(row["config"]),
                error=row["error"], version=row["version"])


def get_exec(db, eid: str) -> Exec | None:
    rows = _query(db, "SELECT * FROM execs WHERE id=?", (eid,))
    return _exec(rows[0]) if rows else None


def exec_ids(db, container_id: str) -> list[str]:
    """The container's execs that have not exited (moby's ExecIDs: created or running), oldest first."""
    return [r[0] for r in _query(db, "SELECT id FROM execs WHERE container_id=? AND state!='exited'"
                                     " ORDER BY created_nano", (container_id,))]


def execs_in_state(db, state: str) -> list[Exec]:
    return [_exec(r) for r in _query(db, "SELECT * FROM execs WHERE state=? ORDER BY created_nano", (state,))]


def container_execs(db, container_id: str, state: str | None = None) -> list[Exec]:
    sql, params = "SELECT * FROM execs WHERE container_id=?", [container_id]
    if state is not None:
        sql += " AND state=?"
        params.append(state)
    return [_exec(r) for r in _query(db, sql + " ORDER BY created_nano", params)]
