"""/volumes (`docker volume create/ls/inspect/rm/prune`) over app/runtime/volumes, and berth's own
GET /berth/volumes/orphans (`berth volume orphans`)."""
from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema

from app.api import current_engine
from app.api.params import DockerBool, Filters, load_query
from app.api.schemas import load_json_body
from app.api.schemas.volume_create import VolumeCreateRequest
from app.errors import Unavailable

bp = Blueprint("volumes", __name__)


def _volumes():
    return current_engine().volumes


class ListQuery(Schema):
    filters = Filters(frozenset({"dangling", "name", "label", "label!", "driver"}), load_default=dict)


class InspectQuery(Schema):
    size = DockerBool(load_default=False)


class RemoveQuery(Schema):
    force = DockerBool(load_default=False)


class PruneQuery(Schema):
    filters = Filters(frozenset({"label", "label!", "all"}), load_default=dict)


class OrphansQuery(Schema):
    size = DockerBool(load_default=True)


@bp.get("/volumes")
def list_volumes():
    q = load_query(ListQuery(), request.args)
    return jsonify({"Volumes": _volumes().list(q["filters"]), "Warnings": []})


def _api_at_least(version: tuple[int, int]) -> bool:
    given = request.environ.get("berth.api_version")
    return not given or tuple(int(p) for p in given.split(".")) >= version


# moby (daemon/cluster errNoManager) for a cluster volume on a node that is not a swarm manager
NO_SWARM = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
            'node to swarm and try again.')


@bp.post("/volumes/create")
def create_volume():
    body = load_json_body(request, VolumeCreateRequest(), current_engine().config.max_json_body)
    if body.get("ClusterVolumeSpec") is not None and _api_at_least((1, 42)):
        # a swarm cluster volume (API >= 1.42, as moby); berth has no swarm mode: refused by name, and
        # never made into a local volume. (Below 1.42 the field did not exist and moby ignores it.)
        raise Unavailable(f"ClusterVolumeSpec: cluster volumes need swarm mode: {NO_SWARM}")
    view = _volumes().create(body.get("Name") or "", body.get("Driver") or "", body.get("DriverOpts") or {},
                             body.get("Labels") or {})
    return jsonify(view), 201


@bp.get("/volumes/<name>")
def inspect_volume(name):
    q = load_query(InspectQuery(), request.args)
    return jsonify(_volumes().view(_volumes().get(name), size=q["size"]))


@bp.delete("/volumes/<name>")
def remove_volume(name):
    q = load_query(RemoveQuery(), request.args)
    _volumes().remove(name, force=q["force"])
    return Response(status=204)


@bp.post("/volumes/prune")
def prune_volumes():
    q = load_query(PruneQuery(), request.args)
    filters = dict(q["filters"])
    if not _api_at_least((1, 42)):
        filters.setdefault("all", {"true"})        # before 1.42 prune removed named volumes too
    return Response(json.dumps(_volumes().prune(filters)) + "\n", mimetype="application/json")


@bp.get("/berth/volumes/orphans")
def volume_orphans():
    q = load_query(OrphansQuery(), request.args)
    return jsonify(_volumes().orphans(with_size=q["size"]))
