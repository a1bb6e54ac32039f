"""The images read model (`images`, inspect, /info counts, which reference names which image).

Image events follow Docker: the actor is the image ID (sha256:…); `tag`/`untag` carry the reference
in Attributes["name"]. The event that brings an image into the store (import, load, pull, commit)
carries its metadata in the payload.
"""
from __future__ import annotations

import json

from app.events.model import Event

ARRIVALS = ("import", "load", "pull", "commit", "create")


class ImagesProjector:
    name = "images"
    version = 2
    tables = ("images", "image_refs")
    schema = (
        """CREATE TABLE IF NOT EXISTS images (
            id TEXT PRIMARY KEY,
            parent TEXT NOT NULL DEFAULT '',
            created_nano INTEGER NOT NULL DEFAULT 0,
            size INTEGER NOT NULL DEFAULT 0,
            last_tag_nano INTEGER NOT NULL DEFAULT 0,
            labels TEXT NOT NULL DEFAULT '{}',
            config TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE IF NOT EXISTS image_refs (
            ref TEXT PRIMARY KEY,
            image_id TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS image_refs_image ON image_refs (image_id)",
    )

    def apply(self, conn, ev: Event) -> None:
        if ev.type != "image":
            return
        if ev.action in ARRIVALS and ev.payload is not None:
            p = ev.payload
            conn.execute(
                "INSERT OR REPLACE INTO images (id, parent, created_nano, size, labels, config) VALUES (?, ?, ?, ?, ?, ?)",
                (ev.actor_id, p.get("parent", ""), int(p.get("created_nano", ev.time_nano)), int(p.get("size", 0)),
                 json.dumps(p.get("labels", {}), sort_keys=True), json.dumps(p.get("config", {}), sort_keys=True)),
            )
        elif ev.action == "tag" and "name" in ev.attributes:
            # A reference names one image at a time: tagging moves it.
            conn.execute("INSERT OR REPLACE INTO image_refs (ref, image_id) VALUES (?, ?)",
                         (ev.attributes["name"], ev.actor_id))
            conn.execute("UPDATE images SET last_tag_nano=? WHERE id=?", (ev.time_nano, ev.actor_id))
        elif ev.action == "untag":
            # Docker's untag event names the image; berth records the reference in the payload.
            ref = (ev.payload or {}).get("ref") or ev.attributes.get("name")
            conn.execute("DELETE FROM image_refs WHERE ref=? AND image_id=?", (ref, ev.actor_id))
        elif ev.action == "delete":
            conn.execute("DELETE FROM image_refs WHERE image_id=?", (ev.actor_id,))
            conn.execute("DELETE FROM images WHERE id=?", (ev.actor_id,))
