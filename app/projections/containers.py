"""The containers read model (`ps`, inspect, /info counts), moved only by container events.

A `create` event's payload carries the container's configuration; later events move its state.
"""
from __future__ import annotations

import json

from app.events.model import Event

STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


class ContainersProjector:
    name = "containers"
    version = 5
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
            error TEXT NOT NULL DEFAULT ''
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

    def _on_create(self, conn, ev: Event) -> None:
        payload = ev.payload or {}
        labels = payload.get("labels", {})
        host_config = payload.get("host_config", {})
        conn.execute(
            "INSERT OR REPLACE INTO containers (id, name, image, image_id, created_nano, labels, command,"
            " network_mode, config, host_config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.actor_id, ev.attributes.get("name", ev.actor_id[:12]), ev.attributes.get("image", ""),
             payload.get("image_id", ""), ev.time_nano, json.dumps(labels, sort_keys=True),
             " ".join(payload.get("command") or []), host_config.get("NetworkMode") or "default",
             json.dumps(payload.get("config", {}), sort_keys=True), json.dumps(host_config, sort_keys=True)),
        )

    def _on_start(self, conn, ev: Event) -> None:
        pid = int((ev.payload or {}).get("pid", 0))
        conn.execute(
            "UPDATE containers SET state='running', pid=?, started_nano=?, exit_code=0, oom_killed=0, error=''"
            " WHERE id=?",
            (pid, ev.time_nano, ev.actor_id))

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

    def _on_destroy(self, conn, ev: Event) -> None:
        conn.execute("DELETE FROM containers WHERE id=?", (ev.actor_id,))
