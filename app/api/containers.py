"""Container endpoints. Listing reads the containers projection; lifecycle arrives with the runtime."""
from __future__ import annotations

import json
import time

from flask import Blueprint, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, load_query
from app.common.filters import labels_match
from app.common.humanize import human_duration

bp = Blueprint("containers", __name__)

LIST_FILTER_KEYS = frozenset({"id", "name", "label", "status", "exited", "ancestor", "before", "since",
                              "volume", "network", "health", "isolation", "publish", "expose", "is-task"})
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


class ListQuery(Schema):
    all = DockerBool(load_default=False)
    limit = fields.Integer(load_default=-1)
    size = DockerBool(load_default=False)
    filters = Filters(LIST_FILTER_KEYS, load_default=dict)


def status_text(row, now_ns: int) -> str:
    state = row["state"]
    if state in ("running", "paused"):
        text = "Up " + human_duration((now_ns - row["started_nano"]) / 1e9)
        return text + " (Paused)" if state == "paused" else text
    if state == "exited":
        return f"Exited ({row['exit_code']}) {human_duration((now_ns - row['finished_nano']) / 1e9)} ago"
    return {"created": "Created", "removing": "Removal In Progress", "dead": "Dead",
            "restarting": "Restarting"}.get(state, state.capitalize())


def _matches(row, labels: dict, f: dict) -> bool:
    if "id" in f and not any(row["id"].startswith(v) for v in f["id"]):
        return False
    if "name" in f and not any(v.lstrip("/") in row["name"] for v in f["name"]):
        return False
    if "status" in f and row["state"] not in f["status"]:
        return False
    if "exited" in f and (row["state"] != "exited" or str(row["exit_code"]) not in f["exited"]):
        return False
    return labels_match(f.get("label", ()), labels)


@bp.get("/containers/json")
def list_containers():
    q = load_query(ListQuery(), request.args)
    f = q["filters"]
    bad = f.get("status", set()) - STATUSES
    if bad:
        from app.errors import InvalidParameter
        raise InvalidParameter(f"invalid filter 'status={sorted(bad)[0]}'")
    store = current_engine().store
    sql = "SELECT * FROM containers"
    if not q["all"] and not f.get("status") and not f.get("exited") and q["limit"] <= 0:
        sql += " WHERE state IN ('running', 'paused', 'restarting')"
    rows = store.query(sql + " ORDER BY created_nano DESC")
    now = time.time_ns()
    out = []
    for row in rows:
        labels = json.loads(row["labels"])
        if not _matches(row, labels, f):
            continue
        config = json.loads(row["config"])
        host_config = json.loads(row["host_config"])
        command = " ".join((config.get("Entrypoint") or []) + (config.get("Cmd") or []))
        out.append({
            "Id": row["id"], "Names": ["/" + row["name"]], "Image": row["image"], "ImageID": row["image_id"],
            "Command": command, "Created": row["created_nano"] // 1_000_000_000, "Ports": [], "Labels": labels,
            "State": row["state"], "Status": status_text(row, now),
            "HostConfig": {"NetworkMode": host_config.get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": {}}, "Mounts": [],
        })
        if 0 < q["limit"] <= len(out):
            break
    return jsonify(out)
