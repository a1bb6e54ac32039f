"""/networks: list, inspect, create, remove, connect, disconnect, prune (app/runtime/network)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, load_query
from app.api.schemas import load_json_body
from app.api.schemas.network import ConnectRequest, CreateRequest, DisconnectRequest
from app.common.filters import labels_match
from app.errors import InvalidParameter

bp = Blueprint("networks", __name__)

LIST_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})
PRUNE_FILTERS = frozenset({"until", "label", "label!"})


class ListQuery(Schema):
    filters = Filters(LIST_FILTERS, load_default=dict)


class InspectQuery(Schema):
    verbose = DockerBool(load_default=False)
    scope = fields.String(load_default="")


class PruneQuery(Schema):
    filters = Filters(PRUNE_FILTERS, load_default=dict)


def _service():
    return current_engine().networks


def _matches(net, f: dict, service) -> bool:
    if "name" in f and not any(v in net.name for v in f["name"]):
        return False
    if "id" in f and not any(net.id.startswith(v) or v in net.id for v in f["id"]):
        return False
    if "driver" in f and net.driver not in f["driver"]:
        return False
    if "scope" in f and not f["scope"] & {"local"}:
        return False
    if "label" in f and not labels_match(f["label"], net.labels):
        return False
    if "type" in f:
        for value in f["type"]:
            if value not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{value}'")
        kind = "builtin" if net.config.get("predefined") else "custom"
        if kind not in f["type"]:
            return False
    if "dangling" in f:
        values = f["dangling"]
        if not values <= {"true", "false", "1", "0"} or len(values) > 1:
            raise InvalidParameter(f"invalid filter 'dangling=[{' '.join(sorted(values))}]'")
        dangling = not net.config.get("predefined") and not service.endpoints(net.id)
        if dangling != (next(iter(values)) in ("true", "1")):
            return False
    return True


@bp.get("/networks")
def list_networks():
    q = load_query(ListQuery(), request.args)
    service = _service()
    return jsonify([service.inspect(n) for n in service.list() if _matches(n, q["filters"], service)])


@bp.get("/networks/<ref>")
def inspect_network(ref):
    load_query(InspectQuery(), request.args)
    service = _service()
    return jsonify(service.inspect(service.resolve(ref)))


@bp.post("/networks/create")
def create_network():
    body = load_json_body(request, CreateRequest(), current_engine().config.max_json_body)
    nid, warning = _service().create_network(body)
    return jsonify({"Id": nid, "Warning": warning}), 201


@bp.delete("/networks/<ref>")
def remove_network(ref):
    _service().remove_network(ref)
    return Response(status=204)


@bp.post("/networks/<ref>/connect")
def connect_network(ref):
    body = load_json_body(request, ConnectRequest(), current_engine().config.max_json_body)
    if not body.get("Container"):
        raise InvalidParameter("no container specified")
    _service().connect(ref, body["Container"], body.get("EndpointConfig") or {})
    return Response(status=200)


@bp.post("/networks/<ref>/disconnect")
def disconnect_network(ref):
    body = load_json_body(request, DisconnectRequest(), current_engine().config.max_json_body)
    if not body.get("Container"):
        raise InvalidParameter("no container specified")
    _service().disconnect(ref, body["Container"], bool(body.get("Force")))
    return Response(status=200)


@bp.post("/networks/prune")
def prune_networks():
    q = load_query(PruneQuery(), request.args)
    f = q["filters"]
    until_ns = None
    if "until" in f:
        from app.common.timeparse import parse_timestamp
        until_ns = min(parse_timestamp(v) for v in f["until"])

    def keep(net):
        if until_ns is not None and net.created_nano >= until_ns:
            return True
        if "label" in f and not labels_match(f["label"], net.labels):
            return True
        if "label!" in f and any(labels_match([w], net.labels) for w in f["label!"]):
            return True
        return False

    return jsonify({"NetworksDeleted": _service().prune(keep) or None})



@bp.post("/swarm/leave")
def swarm_leave():
    """moby's answer on a node outside any swarm: docker-py's network tests call it in tearDown and
    ignore exactly this 503."""
    from app.errors import Unavailable
    raise Unavailable("This node is not part of a swarm")
