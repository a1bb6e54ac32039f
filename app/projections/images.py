"""The images read model (`images`, inspect, /info counts, which reference names which image).

Image events follow Docker: the actor is the image ID (sha256:…); `tag`/`untag` carry the reference
in Attributes["name"]. The event that brings an image into the store (import, load, pull, commit)
carries its metadata in the payload.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from app.events.model import Event
from app.projections.reads import query as _query

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


# ------------------------------------------------------------------------------------------ read side

@dataclass(frozen=True)
class Image:
    id: str                     # sha256:<hex> of the config
    parent: str
    created_nano: int
    size: int
    last_tag_nano: int
    labels: dict
    config: dict                # the image config (OCI/Docker), decoded

    @property
    def diff_ids(self) -> list[str]:
        return (self.config.get("rootfs") or {}).get("diff_ids") or []


def _image(row) -> Image:
    return Image(id=row["id"], parent=row["parent"], created_nano=row["created_nano"], size=row["size"],
                 last_tag_nano=row["last_tag_nano"], labels=json.loads(row["labels"]),
                 config=json.loads(row["config"]))


def get_image(db, image_id: str) -> Image | None:
    rows = _query(db, "SELECT * FROM images WHERE id=?", (image_id,))
    return _image(rows[0]) if rows else None


def image_by_ref(db, ref: str) -> Image | None:
    """The image a familiar reference ("busybox:latest") names."""
    rows = _query(db, "SELECT images.* FROM image_refs JOIN images ON images.id = image_refs.image_id"
                    " WHERE image_refs.ref=?", (ref,))
    return _image(rows[0]) if rows else None


def images_by_id_prefix(db, prefix: str) -> list[Image]:
    """Every image whose ID starts with sha256:<prefix> (prefix: lowercase hex)."""
    return [_image(r) for r in _query(db, "SELECT * FROM images WHERE id LIKE ?", ("sha256:" + prefix + "%",))]


def list_images(db) -> list[Image]:
    """Newest first, as `docker images` lists them."""
    return [_image(r) for r in _query(db, "SELECT * FROM images ORDER BY created_nano DESC, id")]


def refs_of(db, image_id: str) -> list[str]:
    return [r[0] for r in _query(db, "SELECT ref FROM image_refs WHERE image_id=? ORDER BY ref", (image_id,))]


def all_refs(db) -> list[tuple[str, str]]:
    """[(reference, image ID)] ordered by reference."""
    return [(r[0], r[1]) for r in _query(db, "SELECT ref, image_id FROM image_refs ORDER BY ref")]


def ref_target(db, ref: str) -> str | None:
    """The image ID a reference names now, if any."""
    rows = _query(db, "SELECT image_id FROM image_refs WHERE ref=?", (ref,))
    return rows[0][0] if rows else None


def image_sizes(db) -> dict[str, int]:
    return {r[0]: r[1] for r in _query(db, "SELECT id, size FROM images")}


def image_count(db) -> int:
    return _query(db, "SELECT COUNT(*) FROM images")[0][0]


def descendants(db, image_id: str) -> set[str]:
    """The image and every image built on it (parent links), as moby walks the children."""
    return {r[0] for r in _query(db, 
        "WITH RECURSIVE d(id) AS (SELECT ? UNION SELECT images.id FROM images JOIN d ON images.parent = d.id)"
        " SELECT id FROM d", (image_id,))}
