"""POST /commit: a new image from a container (moby's api/server/router/container postCommit)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, load_query
from app.api.schemas import decode, parse_body, read_body
from app.api.schemas.container_create import Config

bp = Blueprint("commit", __name__)


class ContainerConfig(Config):
    """The body: a container.Config (empty or `null` means the container's own)."""
    go_name = "Config"
    go_type = "container.Config"


class CommitQuery(Schema):
    container = fields.String(load_default="")
    repo = fields.String(load_default="")
    tag = fields.String(load_default="")
    author = fields.String(load_default="")
    comment = fields.String(load_default="")
    pause = DockerBool(load_default=None)
    changes = fields.List(fields.String(), load_default=list)


@bp.post("/commit")
def commit():
    engine = current_engine()
    q = load_query(CommitQuery(), request.args)
    raw = read_body(request.environ, request.stream, engine.config.max_json_body)
    config = None
    if raw.strip() and raw.strip() != b"null":
        config = decode(ContainerConfig(), parse_body(raw))
    pause = True if q["pause"] is None else q["pause"]
    image_id = engine.containers.commit(q["container"], q["repo"] or None, q["tag"] or None, q["author"],
                                        q["comment"], pause, q["changes"], config)
    return jsonify({"Id": image_id}), 201
