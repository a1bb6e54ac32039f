"""Container endpoints. Listing reads the containers projection; lifecycle arrives with the runtime."""
from __future__ import annotations

import json
import os
import time

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, Timestamp, load_query
from app.errors import InvalidParameter, NotFound
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
        raise InvalidParameter(f"invalid filter 'status={sorted(bad)[0]}'")
    store = current_engine().store
    sql = "SELECT * FROM containers"
    if not q["all"] and not f.get("status") and not f.get("exited") and q["limit"] <= 0:
        sql += " WHERE state IN ('running', 'paused', 'restarting')"
    rows = store.query(sql + " ORDER BY created_nano DESC")
    now = time.time_ns()
    out = []
    for row in rows:   # projection columns only: no per-row decoding of the stored configs
        labels = json.loads(row["labels"]) if row["labels"] != "{}" else {}
        if not _matches(row, labels, f):
            continue
        out.append({
            "Id": row["id"], "Names": ["/" + row["name"]], "Image": row["image"], "ImageID": row["image_id"],
            "Command": row["command"], "Created": row["created_nano"] // 1_000_000_000, "Ports": [],
            "Labels": labels, "State": row["state"], "Status": status_text(row, now),
            "HostConfig": {"NetworkMode": row["network_mode"]},
            "NetworkSettings": {"Networks": {}}, "Mounts": [],
        })
        if 0 < q["limit"] <= len(out):
            break
    return jsonify(out)


# ------------------------------------------------------------------------------------------ lifecycle

def _containers():
    return current_engine().containers


@bp.post("/containers/create")
def create_container():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a container config object is required")
    name = request.args.get("name") or None
    cid = _containers().create(body, name)
    return jsonify({"Id": cid, "Warnings": []}), 201


@bp.post("/containers/<ref>/start")
def start_container(ref):
    _containers().start(ref)
    return Response(status=204)


class StopQuery(Schema):
    t = fields.Integer(load_default=None)
    signal = fields.String(load_default=None)


@bp.post("/containers/<ref>/stop")
def stop_container(ref):
    q = load_query(StopQuery(), request.args)
    _containers().stop(ref, q["t"], q["signal"])
    return Response(status=204)


@bp.post("/containers/<ref>/kill")
def kill_container(ref):
    _containers().kill(ref, request.args.get("signal") or "KILL")
    return Response(status=204)


@bp.post("/containers/<ref>/wait")
def wait_container(ref):
    containers = _containers()         # captured: the body runs after the request context is gone
    row = containers.resolve(ref)
    condition = request.args.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition}")
    cid = row["id"]

    def body():
        yield b""   # the head goes out now: `docker run` calls /start only after seeing it
        if condition == "next-exit" and row["state"] not in ("running", "paused"):
            while (state := containers._q("SELECT state FROM containers WHERE id=?", (cid,))) and \
                    state[0][0] not in ("running", "paused"):    # wait for a start, then its exit
                time.sleep(0.02)
        containers.wait_exit(cid, None)
        if condition == "removed":
            while containers._q("SELECT 1 FROM containers WHERE id=?", (cid,)):
                with containers.lock:
                    containers.exited.wait(0.2)
        code = containers.last_exit_code(cid)
        yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Response(body(), mimetype="application/json")


class RemoveQuery(Schema):
    force = DockerBool(load_default=False)
    v = DockerBool(load_default=False)
    link = DockerBool(load_default=False)


@bp.delete("/containers/<ref>")
def remove_container(ref):
    q = load_query(RemoveQuery(), request.args)
    _containers().remove(ref, q["force"])
    return Response(status=204)


def _rfc3339(ns: int) -> str:
    if not ns:
        return "0001-01-01T00:00:00Z"
    from app.runtime.logs import rfc3339_nano_utc
    return rfc3339_nano_utc(ns)


@bp.get("/containers/<ref>/json")
def inspect_container(ref):
    containers = _containers()
    row = containers.resolve(ref)
    config, host_config = json.loads(row["config"]), json.loads(row["host_config"])
    images = current_engine().images
    try:
        image_cfg = images.config(images.resolve(row["image_id"])[0]).get("config") or {}
    except NotFound:
        image_cfg = {}
    from app.runtime.ocispec import command_of
    args = command_of(image_cfg, config)
    state = row["state"]
    bundle = containers.bundle(row["id"])
    merged = {**image_cfg, **{k: v for k, v in config.items() if v not in (None, "", [], {})}}
    merged.update({"Image": row["image"], "Labels": json.loads(row["labels"]),
                   "Hostname": config.get("Hostname") or row["id"][:12], "Tty": bool(config.get("Tty")),
                   "OpenStdin": bool(config.get("OpenStdin")), "Cmd": config.get("Cmd") or image_cfg.get("Cmd"),
                   "Entrypoint": config.get("Entrypoint") or image_cfg.get("Entrypoint")})
    return jsonify({
        "Id": row["id"], "Created": _rfc3339(row["created_nano"]), "Path": args[0], "Args": args[1:],
        "State": {"Status": state, "Running": state in ("running", "paused"), "Paused": state == "paused",
                  "Restarting": state == "restarting", "OOMKilled": bool(row["oom_killed"]), "Dead": state == "dead",
                  "Pid": row["pid"] if state in ("running", "paused") else 0, "ExitCode": row["exit_code"],
                  "Error": "", "StartedAt": _rfc3339(row["started_nano"]),
                  "FinishedAt": _rfc3339(row["finished_nano"])},
        "Image": row["image_id"], "ResolvConfPath": os.path.join(bundle, "resolv.conf"),
        "HostnamePath": os.path.join(bundle, "hostname"), "HostsPath": os.path.join(bundle, "hosts"),
        "LogPath": os.path.join(bundle, "userdata", "ctr.log"), "Name": "/" + row["name"],
        "RestartCount": row["restart_count"], "Driver": "overlay2", "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": {"NetworkMode": "default", "LogConfig": {"Type": "json-file", "Config": {}},
                       "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
                       "Binds": None, "PortBindings": {}, **host_config},
        "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": os.path.join(bundle, "upper"),
                                                     "WorkDir": os.path.join(bundle, "work"),
                                                     "MergedDir": os.path.join(bundle, "rootfs")}},
        "Mounts": [], "Config": merged,
        "NetworkSettings": {"Networks": {}, "Ports": {}, "IPAddress": "", "Gateway": "", "MacAddress": ""},
    })


class LogsQuery(Schema):
    stdout = DockerBool(load_default=False)
    stderr = DockerBool(load_default=False)
    follow = DockerBool(load_default=False)
    timestamps = DockerBool(load_default=False)
    since = Timestamp(load_default=None)
    until = Timestamp(load_default=None)
    tail = fields.String(load_default="all")


@bp.get("/containers/<ref>/logs")
def container_logs(ref):
    from app.runtime.logs import messages, render, select
    q = load_query(LogsQuery(), request.args)
    if not q["stdout"] and not q["stderr"]:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tail = -1 if q["tail"] in ("all", "", None) else (int(q["tail"]) if q["tail"].lstrip("-").isdigit() else -1)
    containers = _containers()
    row = containers.resolve(ref)
    cid = row["id"]
    tty = bool(json.loads(row["config"]).get("Tty"))
    streams = tuple(s for s in ("stdout", "stderr") if q[s])
    path = containers.monitor.files(cid, containers.bundle(cid)).log

    def body():
        yield b""
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return
        with fh:
            for msg in select(messages(fh), q["since"] or 0, q["until"] or 0, tail, streams):
                yield render(msg, q["timestamps"], tty)
            while q["follow"]:
                running = containers._q("SELECT state FROM containers WHERE id=?", (cid,))
                lines = fh.readlines()
                for msg in select(messages(lines), q["since"] or 0, q["until"] or 0, -1, streams):
                    yield render(msg, q["timestamps"], tty)
                if not running or running[0][0] not in ("running", "paused"):
                    return
                time.sleep(0.1)

    media = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    return Response(body(), mimetype=media)


@bp.post("/containers/<ref>/pause")
def pause_container(ref):
    _containers().pause(ref)
    return Response(status=204)


@bp.post("/containers/<ref>/unpause")
def unpause_container(ref):
    _containers().unpause(ref)
    return Response(status=204)


@bp.post("/containers/<ref>/rename")
def rename_container(ref):
    _containers().rename(ref, request.args.get("name", ""))
    return Response(status=204)


@bp.post("/containers/<ref>/restart")
def restart_container(ref):
    q = load_query(StopQuery(), request.args)
    _containers().restart(ref, q["t"])
    return Response(status=204)


@bp.get("/containers/<ref>/top")
def top_container(ref):
    return jsonify(_containers().top(ref, request.args.get("ps_args") or "-ef"))


@bp.get("/containers/<ref>/changes")
def container_changes(ref):
    return jsonify(_containers().changes(ref) or None)


@bp.get("/containers/<ref>/export")
def export_container(ref):
    return Response(_containers().export(ref), mimetype="application/x-tar")
