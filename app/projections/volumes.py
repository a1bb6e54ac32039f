"""The volumes read model (`volume ls`, inspect, orphan tracking), moved only by volume events.

`mount`/`unmount` carry the container in Attributes["container"]; the volume_users table is the set
of containers that have the volume mounted right now.
"""
from __future__ import annotations

import json

from app.events.model import Event


class VolumesProjector:
    name = "volumes"
    version = 1
    tables = ("volumes", "volume_users")
    schema = (
        """CREATE TABLE IF NOT EXISTS volumes (
            name TEXT PRIMARY KEY,
            driver TEXT NOT NULL DEFAULT 'local',
            created_nano INTEGER NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}',
            options TEXT NOT NULL DEFAULT '{}',
            anonymous INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE IF NOT EXISTS volume_users (
            volume TEXT NOT NULL,
            container TEXT NOT NULL,
            PRIMARY KEY (volume, container)
        )""",
    )

    def apply(self, conn, ev: Event) -> None:
        if ev.type != "volume":
            return
        if ev.action == "create":
            p = ev.payload or {}
            conn.execute(
                "INSERT OR REPLACE INTO volumes (name, driver, created_nano, labels, options, anonymous)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ev.actor_id, ev.attributes.get("driver", "local"), ev.time_nano,
                 json.dumps(p.get("labels", {}), sort_keys=True), json.dumps(p.get("options", {}), sort_keys=True),
                 1 if p.get("anonymous") else 0),
            )
        elif ev.action == "mount" and "container" in ev.attributes:
            conn.execute("INSERT OR IGNORE INTO volume_users (volume, container) VALUES (?, ?)",
                         (ev.actor_id, ev.attributes["container"]))
        elif ev.action == "unmount" and "container" in ev.attributes:
            conn.execute("DELETE FROM volume_users WHERE volume=? AND container=?",
                         (ev.actor_id, ev.attributes["container"]))
        elif ev.action == "destroy":
            conn.execute("DELETE FROM volume_users WHERE volume=?", (ev.actor_id,))
            conn.execute("DELETE FROM volumes WHERE name=?", (ev.actor_id,))
