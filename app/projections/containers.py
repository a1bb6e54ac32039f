"""The containers read model (`ps`, inspect, /info counts), moved only by container events.

A `create` event's payload carries the container's configuration; later events move its state.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from app.events.model import Event
from app.projections.reads import query as _query

STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


class ContainersProjector:
    name = "containers"
    version = 7
    tables = ("containers",)
    schema = (
        """CREATE TABLE IF NOT EXISTS containers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            image TEXT NOT NULL DEFAULT '',
            image_id TEXT NOT NULL DEFAULT '',
            created_nano INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'created',
            pid INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER NOT NULL DEFAULT 0,
            oom_killed INTEGER NOT NULL DEFAULT 0,
            started_nano INTEGER NOT NULL DEFAULT 0,
            finished_nano INTEGER NOT NULL DEFAULT 0,
            restart_count INTEGER NOT NULL DEFAULT 0,
            labels TEXT NOT NULL DEFAULT '{}',
            command TEXT NOT NULL DEFAULT '',
            network_mode TEXT NOT NULL DEFAULT 'default',
            config TEXT NOT NULL DEFAULT '{}',
            host_config TEXT NOT NULL DEFAULT '{}',
            error TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL DEFAULT 0
        )""",
        # Covers GET /containers/json (app/api/container_list.py LIST_SQL) in creation order, so a listing
        # reads neither the table rows nor their config/host_config blobs.
        """CREATE INDEX IF NOT EXISTS containers_list ON containers (created_nano, id, name, image, image_id,
            state, exit_code, started_nano, finished_nano, labels, command, network_mode)""",
    )

    def apply(self, conn, ev: Event) -> None:
        if ev.type != "container":
            return
        handler = getattr(self, "_on_" + ev.action.replace("-", "_"), None)
        if handler is not None:
            handler(conn, ev)
        if ev.stream == "container:" + ev.actor_id:
            # the stream version the row reflects: commands append with it as expected_version
            conn.execute("UPDATE containers SET version=? WHERE id=?", (ev.version, ev.actor_id))

    def _on_create(self, conn, ev: Event) -> None:
        """A plain INSERT: a name (or ID) already taken fails the append (the create's guard checks
        first, with Docker's message); it never replaces the other container's row."""
        payload = ev.payload or {}
        labels = payload.get("labels", {})
        host_config = payload.get("host_config", {})
        conn.execute(
            "INSERT INTO containers (id, name, image, image_id, created_nano, labels, command,"
            " network_mode, config, host_config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.actor_id, ev.attributes.get("name", ev.actor_id[:12]), ev.attributes.get("image", ""),
             payload.get("image_id", ""), ev.time_nano, json.dumps(labels, sort_keys=True),
             " ".join(payload.get("command") or []), host_config.get("NetworkMode") or "default",
             json.dumps(payload.get("config", {}), sort_keys=True), json.dumps(host_config, sort_keys=True)),
        )

    def _on_start(self, conn, ev: Event) -> None:
        """A start from `restarting` is a restart policy's and keeps RestartCount; a user's start resets it
        (moby's ResetRestartManager(true))."""
        pid = int((ev.payload or {}).get("pid", 0))
        conn.execute(
            "UPDATE containers SET restart_count=CASE WHEN state='restarting' THEN restart_count ELSE 0 END,"
            " state='running', pid=?, started_nano=?, exit_code=0, oom_killed=0, error=''"
            " WHERE id=?",
            (pid, ev.time_nano, ev.actor_id))

    def _on_restart_scheduled(self, conn, ev: Event) -> None:
        """A restart policy's restart is due (app/runtime/restart/service.py): State.Restarting, counted."""
        conn.execute("UPDATE containers SET state='restarting', restart_count=restart_count+1 WHERE id=?"
                     " AND state='exited'", (ev.actor_id,))

    def _on_restart_cancelled(self, conn, ev: Event) -> None:
        conn.execute("UPDATE containers SET state='exited' WHERE id=? AND state='restarting'", (ev.actor_id,))

    def _on_die(self, conn, ev: Event) -> None:
        try:
            code = int(ev.attributes.get("exitCode", "0"))
        except ValueError:
            code = 255
        conn.execute(
            "UPDATE containers SET state='exited', pid=0, exit_code=?, finished_nano=? WHERE id=?",
            (code, ev.time_nano, ev.actor_id))

    def _on_start_failed(self, conn, ev: Event) -> None:
        """berth's own record of a start the runtime refused: Docker's State.Error and exit code."""
        payload = ev.payload or {}
        conn.execute("UPDATE containers SET error=?, exit_code=? WHERE id=?",
                     (payload.get("error", ""), int(payload.get("exit_code", 128)), ev.actor_id))

    def _on_oom(self, conn, ev: Event) -> None:
        conn.execute("UPDATE containers SET oom_killed=1 WHERE id=?", (ev.actor_id,))

    def _on_pause(self, conn, ev: Event) -> None:
        conn.execute("UPDATE containers SET state='paused' WHERE id=? AND state='running'", (ev.actor_id,))

    def _on_unpause(self, conn, ev: Event) -> None:
        conn.execute("UPDATE containers SET state='running' WHERE id=? AND state='paused'", (ev.actor_id,))

    def _on_rename(self, conn, ev: Event) -> None:
        conn.execute("UPDATE containers SET name=? WHERE id=?", (ev.attributes["name"], ev.actor_id))

    def _on_update(self, conn, ev: Event) -> None:
        """`docker update`: the payload's host_config keys replace the stored ones (inspect shows them,
        the next start applies them)."""
        changes = (ev.payload or {}).get("host_config") or {}
        row = conn.execute("SELECT host_config FROM containers WHERE id=?", (ev.actor_id,)).fetchone()
        if row is None or not changes:
            return
        conn.execute("UPDATE containers SET host_config=? WHERE id=?",
                     (json.dumps({**json.loads(row[0]), **changes}, sort_keys=True), ev.actor_id))

    _on_unlink = _on_update     # rm -l: berth's own record, the linker's host_config Links without the link

    def _on_destroy(self, conn, ev: Event) -> None:
        conn.execute("DELETE FROM containers WHERE id=?", (ev.actor_id,))


# ------------------------------------------------------------------------------------------ read side
# The runtime and the API read containers only through these functions: rows come back as Container,
# JSON already decoded.

LIVE_STATES = ("running", "paused")


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str                  # the reference it was created from, as given
    image_id: str
    created_nano: int
    state: str
    pid: int
    exit_code: int
    oom_killed: bool
    started_nano: int
    finished_nano: int
    restart_count: int
    labels: dict
    command: str
    network_mode: str
    config: dict
    host_config: dict
    error: str
    version: int                # of the container's event stream, as this row reflects it

    @property
    def is_live(self) -> bool:
        """A process exists (running, or frozen by pause)."""
        return self.state in LIVE_STATES


class Summary(NamedTuple):
    """What `docker ps` needs of a container, read through the covering index (no JSON blobs)."""
    id: str
    name: str
    image: str
    image_id: str
    created_nano: int
    state: str
    exit_code: int
    started_nano: int
    finished_nano: int
    labels: str                 # JSON text: the listing embeds it as is
    command: str
    network_mode: str


_SUMMARY_SQL = ("SELECT id, name, image, image_id, created_nano, state, exit_code, started_nano, finished_nano,"
                " labels, command, network_mode FROM containers ORDER BY created_nano DESC")


def _container(row) -> Container:
    return Container(
        id=row["id"], name=row["name"], image=row["image"], image_id=row["image_id"],
        created_nano=row["created_nano"], state=row["state"], pid=row["pid"], exit_code=row["exit_code"],
        oom_killed=bool(row["oom_killed"]), started_nano=row["started_nano"], finished_nano=row["finished_nano"],
        restart_count=row["restart_count"], labels=json.loads(row["labels"]), command=row["command"],
        network_mode=row["network_mode"], config=json.loads(row["config"]),
        host_config=json.loads(row["host_config"]), error=row["error"], version=row["version"])


def get_container(db, cid: str) -> Container | None:
    """By full ID. `db` is the event store (its per-thread reader) or, inside an append, the writer."""
    rows = _query(db, "SELECT * FROM containers WHERE id=?", (cid,))
    return _container(rows[0]) if rows else None


def find_containers(db, ref: str) -> list[Container]:
    """Docker's lookup order: full ID or name (with or without "/"), else every ID the hex `ref` prefixes."""
    rows = _query(db, "SELECT * FROM containers WHERE id=? OR name=?", (ref, ref.lstrip("/")))
    if not rows and ref and all(c in "0123456789abcdef" for c in ref):
        rows = _query(db, "SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
    return [_container(r) for r in rows]


def container_state(db, cid: str) -> str | None:
    rows = _query(db, "SELECT state FROM containers WHERE id=?", (cid,))
    return rows[0][0] if rows else None


def name_owner(db, name: str) -> str | None:
    """The ID of the container that has `name` (no leading "/"), if any."""
    rows = _query(db, "SELECT id FROM containers WHERE name=?", (name,))
    return rows[0][0] if rows else None


def container_ids(db, states: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> list[str]:
    """IDs in creation order, narrowed to `states` and away from `exclude`."""
    where, params = [], []
    if states is not None:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params += states
    if exclude:
        where.append(f"state NOT IN ({','.join('?' * len(exclude))})")
        params += exclude
    sql = "SELECT id FROM containers" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_nano"
    return [r[0] for r in _query(db, sql, params)]


def containers_using_image(db, image_id: str) -> list[tuple[str, str]]:
    """[(container ID, state)] of the containers created from the image."""
    return [(r[0], r[1]) for r in _query(db, "SELECT id, state FROM containers WHERE image_id=?", (image_id,))]


def container_counts(db) -> dict[str, int]:
    """Containers per state (/info)."""
    return dict(_query(db, "SELECT state, COUNT(*) FROM containers GROUP BY state"))


def summaries(store) -> list[Summary]:
    """Every container, newest first, as `docker ps` shows them."""
    cur = store.reader().cursor()
    cur.row_factory = None
    return [Summary._make(r) for r in cur.execute(_SUMMARY_SQL).fetchall()]


