"""A container's resources: `GET /containers/{id}/stats` (samples of its cgroup counters, one or a
stream) and `POST /containers/{id}/update` (new limits), over app/runtime/containers/stats.py and
update.py."""
from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema

from app.api import current_engine
from app.api.params import DockerBool, load_query
from app.api.schemas import load_json_body
from app.api.schemas.container_update import UpdateConfig
from app.errors import InvalidParameter
from app.streams import admit_stream

bp = Blueprint("container_resources", __name__)


class StatsQuery(Schema):
    stream = DockerBool(load_default=True)
    one_shot = DockerBool(data_key="one-shot", load_default=False)


@bp.get("/containers/<ref>/stats")
def container_stats(ref):
    q = load_query(StatsQuery(), request.args)
    if q["stream"] and q["one_shot"]:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    containers = current_engine().containers
    cid = containers.resolve(ref).id                      # a removed container: 404 before any byte
    held = q["stream"] or not q["one_shot"]               # a stream, or the second read of stream=0
    stream = admit_stream(request.environ, kind="stats") if held else None
    client_gone = stream.client_gone if stream is not None else (lambda: False)

    def body():
        if q["stream"]:
            yield b""                                     # the head goes out at once
        for sample in containers.stats(cid, q["stream"], q["one_shot"], client_gone):
            yield json.dumps(sample).encode() + b"\n"

    return Response(body(), mimetype="application/json")


@bp.post("/containers/<ref>/update")
def update_container(ref):
    engine = current_engine()
    body = load_json_body(request, UpdateConfig(), engine.config.max_json_body)
    return jsonify({"Warnings": engine.containers.update(ref, body)})
