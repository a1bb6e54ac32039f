"""The volumes read model (`volume ls`, inspect, in-use checks, orphans), moved by volume events and
by the container create/destroy events that carry mount points.

Tables:
- volumes: one row per volume; `creator_*` is the container whose create made it (anonymous volumes,
  or a named one a `-v name:/x` brought into being), `orphan_since` the time the last container that
  referenced it went away (NULL while referenced), `last_users` the containers that referenced it
  most recently (JSON [[id, name], …], newest last, at most LAST_USERS).
- mount_points: a container's mount points as its create payload resolved them (`payload["mounts"]`),
  until its destroy. The volume ones are the references: a volume with a row here is in use.
- volume_users: containers that have the volume mounted right now (`mount` / `unmount` events).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from app.events.model import Event
from app.projections.reads import query as _query

LAST_USERS = 5


class VolumesProjector:
    name = "volumes"
    version = 2
    tables = ("volumes", "volume_users", "mount_points")
    schema = (
        """CREATE TABLE IF NOT EXISTS volumes (
            name TEXT PRIMARY KEY,
            driver TEXT NOT NULL DEFAULT 'local',
            created_nano INTEGER NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}',
            options TEXT NOT NULL DEFAULT '{}',
            anonymous INTEGER NOT NULL DEFAULT 0,
            creator_id TEXT NOT NULL DEFAULT '',
            creator_name TEXT NOT NULL DEFAULT '',
            creator_image TEXT NOT NULL DEFAULT '',
            orphan_since INTEGER,
            last_users TEXT NOT NULL DEFAULT '[]'
        )""",
        """CREATE TABLE IF NOT EXISTS volume_users (
            volume TEXT NOT NULL,
            container TEXT NOT NULL,
            PRIMARY KEY (volume, container)
        )""",
        """CREATE TABLE IF NOT EXISTS mount_points (
            container TEXT NOT NULL,
            destination TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            point TEXT NOT NULL,
            PRIMARY KEY (container, destination)
        )""",
        "CREATE INDEX IF NOT EXISTS mount_points_name ON mount_points (name)",
    )

    def apply(self, conn, ev: Event) -> None:
        if ev.type == "container":
            if ev.action == "create":
                for p in (ev.payload or {}).get("mounts") or []:
                    conn.execute("INSERT INTO mount_points (container, destination, type, name, point)"
                                 " VALUES (?, ?, ?, ?, ?)",
                                 (ev.actor_id, p["Destination"], p["Type"], p.get("Name") or "",
                                  json.dumps(p, sort_keys=True)))
                    if p["Type"] == "volume":
                        conn.execute("UPDATE volumes SET orphan_since=NULL WHERE name=?", (p["Name"],))
            elif ev.action == "destroy":
                names = [r[0] for r in conn.execute(
                    "SELECT DISTINCT name FROM mount_points WHERE container=? AND type='volume'", (ev.actor_id,))]
                conn.execute("DELETE FROM mount_points WHERE container=?", (ev.actor_id,))
                conn.execute("DELETE FROM volume_users WHERE container=?", (ev.actor_id,))
                for name in names:
                    row = conn.execute("SELECT last_users FROM volumes WHERE name=?", (name,)).fetchone()
                    if row is None:
                        continue
                    users = [u for u in json.loads(row[0]) if u[0] != ev.actor_id]
                    users = (users + [[ev.actor_id, ev.attributes.get("name", "")]])[-LAST_USERS:]
                    still = conn.execute("SELECT 1 FROM mount_points WHERE name=? AND type='volume' LIMIT 1",
                                         (name,)).fetchone()
                    conn.execute("UPDATE volumes SET last_users=?, orphan_since=? WHERE name=?",
                                 (json.dumps(users), None if still else ev.time_nano, name))
            return
        if ev.type != "volume":
            return
        if ev.action == "create":
            p = ev.payload or {}
            creator = p.get("creator") or {}
            conn.execute(
                "INSERT INTO volumes (name, driver, created_nano, labels, options, anonymous, creator_id,"
                " creator_name, creator_image, orphan_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ev.actor_id, ev.attributes.get("driver", "local"), ev.time_nano,
                 json.dumps(p.get("labels") or {}, sort_keys=True), json.dumps(p.get("options") or {}, sort_keys=True),
                 1 if p.get("anonymous") else 0, creator.get("id", ""), creator.get("name", ""),
                 creator.get("image", ""), ev.time_nano),
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


@dataclass
class Volume:
    name: str
    driver: str
    created_nano: int
    labels: dict
    options: dict
    anonymous: bool
    creator_id: str = ""
    creator_name: str = ""
    creator_image: str = ""
    orphan_since: int | None = None
    last_users: list = field(default_factory=list)

    @property
    def is_orphan(self) -> bool:
        return self.orphan_since is not None


_COLUMNS = ("name, driver, created_nano, labels, options, anonymous, creator_id, creator_name, creator_image,"
            " orphan_since, last_users")


def _obj(text: str) -> dict:
    return {} if text == "{}" else json.loads(text)        # most volumes have no options, many no labels


def _volume(row) -> Volume:
    return Volume(row[0], row[1], row[2], _obj(row[3]), _obj(row[4]), bool(row[5]), row[6], row[7],
                  row[8], row[9], [] if row[10] == "[]" else json.loads(row[10]))


def get_volume(db, name: str) -> Volume | None:
    rows = _query(db, f"SELECT {_COLUMNS} FROM volumes WHERE name=?", (name,))
    return _volume(rows[0]) if rows else None


def list_volumes(db) -> list[Volume]:
    return [_volume(r) for r in _query(db, f"SELECT {_COLUMNS} FROM volumes ORDER BY name")]


def orphans(db) -> list[Volume]:
    return [_volume(r) for r in _query(
        db, f"SELECT {_COLUMNS} FROM volumes WHERE orphan_since IS NOT NULL ORDER BY orphan_since, name")]


def volume_refs(db, name: str) -> list[str]:
    """IDs of the containers whose mount points name the volume (it is in use while any exists)."""
    return [r[0] for r in _query(db, "SELECT DISTINCT container FROM mount_points WHERE name=? AND type='volume'"
                                     " ORDER BY container", (name,))]


def ref_counts(db) -> dict[str, int]:
    return dict(_query(db, "SELECT name, COUNT(DISTINCT container) FROM mount_points WHERE type='volume'"
                           " GROUP BY name"))


def mounted_by(db, name: str) -> list[str]:
    """Containers that have the volume mounted now."""
    return [r[0] for r in _query(db, "SELECT container FROM volume_users WHERE volume=? ORDER BY container",
                                 (name,))]


def container_points(db, cid: str) -> list[dict]:
    """The container's mount points, parents first (as they are mounted)."""
    points = [json.loads(r[0]) for r in _query(db, "SELECT point FROM mount_points WHERE container=?", (cid,))]
    return sorted(points, key=lambda p: (p["Destination"].count("/"), p["Destination"]))


def all_points(db) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for cid, point in _query(db, "SELECT container, point FROM mount_points ORDER BY container, destination"):
        out.setdefault(cid, []).append(json.loads(point))
    return out


def containers_with_mount(db, value: str) -> set[str]:
    """`ps --filter volume=`: containers with a volume of that name or a mount at/from that path."""
    rows = _query(db, "SELECT container, point FROM mount_points WHERE name=? OR destination=?", (value, value))
    out = {r[0] for r in rows}
    for cid, point in _query(db, "SELECT container, point FROM mount_points WHERE type='bind'"):
        if json.loads(point).get("Source") == value:
            out.add(cid)
    return out
