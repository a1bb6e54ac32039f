"""GET /system/df (`docker system df`): moby's types.DiskUsage — the layers' total size, the images
with SharedSize and their container counts, the containers with SizeRw/SizeRootFs, the volumes and
the build cache — read through the projections and the image store's layer sizes.

`type=` (API 1.42) narrows what is computed, as moby's getDiskUsage; the others are null.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter

from flask import Blueprint, Response, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.container_list import status_text
from app.api.params import load_query
from app.common.fsutil import dir_size
from app.errors import InvalidParameter
from app.projections import containers as container_views, images as image_views

bp = Blueprint("system_df", __name__)

TYPES = ("container", "image", "volume", "build-cache")


class DfQuery(Schema):
    type = fields.List(fields.String(), load_default=list)


def _wanted(types: list[str], version: str | None) -> set[str]:
    if not types or (version and tuple(int(p) for p in version.split(".")) < (1, 42)):
        return set(TYPES)
    for value in types:
        if value not in TYPES:
            raise InvalidParameter(f"unknown object type: {value}")
    return set(types)


def images_usage(engine) -> tuple[int, list[dict]]:
    """(LayersSize, Images): each distinct layer counted once; an image's SharedSize is the size of
    its layers that another image uses too (moby's image list with SharedSize)."""
    images, store = engine.images, engine.store
    rows = image_views.list_images(store)
    chains = {row.id: images.chains(row) for row in rows}
    uses = Counter(c for cs in chains.values() for c in set(cs))
    sizes = {c: images.store.layer_size(c) for c in uses}
    users = Counter(image_id for _, image_id in _container_images(store))
    out = []
    for row in rows:
        refs = images.refs_of(row.id)
        out.append({"Containers": users.get(row.id, 0), "Created": row.created_nano // 1_000_000_000,
                    "Id": row.id, "Labels": row.labels or None, "ParentId": row.parent,
                    "RepoDigests": [r for r in refs if "@" in r], "RepoTags": [r for r in refs if "@" not in r],
                    "SharedSize": sum(sizes[c] for c in set(chains[row.id]) if uses[c] > 1), "Size": row.size})
    return sum(sizes.values()), out


def _container_images(store) -> list[tuple[str, str]]:
    return [(s.id, s.image_id) for s in container_views.summaries(store)]


def containers_usage(engine) -> list[dict]:
    """The containers as /containers/json?all=1&size=1 lists them."""
    store = engine.store
    image_sizes = image_views.image_sizes(store)
    now = time.time_ns()
    out = []
    for s in container_views.summaries(store):
        size_rw = dir_size(os.path.join(engine.containers.bundle(s.id), "upper"))
        size_root = size_rw + image_sizes[s.image_id] if s.image_id in image_sizes else 0
        out.append({"Id": s.id, "Names": ["/" + s.name], "Image": s.image, "ImageID": s.image_id,
                    "Command": s.command, "Created": s.created_nano // 1_000_000_000, "Ports": [],
                    **({"SizeRw": size_rw} if size_rw else {}), **({"SizeRootFs": size_root} if size_root else {}),
                    "Labels": json.loads(s.labels), "State": s.state,
                    "Status": status_text(s.state, s.exit_code, s.started_nano, s.finished_nano, now),
                    "HostConfig": {"NetworkMode": s.network_mode}, "NetworkSettings": {"Networks": {}},
                    "Mounts": engine.volumes.container_mounts(s.id)})
    return out


@bp.get("/system/df")
def system_df():
    q = load_query(DfQuery(), request.args)
    wanted = _wanted(q["type"], request.environ.get("berth.api_version"))
    engine = current_engine()
    layers_size, images = images_usage(engine) if "image" in wanted else (0, None)
    body = {"LayersSize": layers_size, "Images": images,
            "Containers": containers_usage(engine) if "container" in wanted else None,
            # build cache arrives with builds: nothing to count yet
            "Volumes": engine.volumes.usage() if "volume" in wanted else None,
            "BuildCache": [] if "build-cache" in wanted else None}
    return Response(json.dumps(body) + "\n", mimetype="application/json")
