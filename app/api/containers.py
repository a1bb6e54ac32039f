"""Container endpoints. Listing reads the containers projection; lifecycle arrives with the runtime."""
from __future__ import annotations

import json
import os
import select
import threading
import time

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, Timestamp, load_query
from app.errors import Conflict, InvalidParameter, NotFound, NotImplemented_
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
    after_seq = current_engine().store.last_seq

    def body():
        yield b""   # the head goes out now: `docker run` calls /start only after seeing it
        code = containers.wait_condition(cid, condition, after_seq)
        if code is None:
            return                  # daemon shutdown
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
                  "Error": row["error"], "StartedAt": _rfc3339(row["started_nano"]),
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
    from app.runtime.logs import follow, messages, render, select
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
            if q["follow"]:
                yield from follow(fh, lambda: containers.is_running(cid), streams, q["since"] or 0,
                                  q["until"] or 0, q["timestamps"], tty)

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


# ------------------------------------------------------------------------------------------ attach

HIJACK_HEAD_GRACE = 0.05


class AttachQuery(Schema):
    stream = DockerBool(load_default=False)
    stdin = DockerBool(load_default=False)
    stdout = DockerBool(load_default=False)
    stderr = DockerBool(load_default=False)
    logs = DockerBool(load_default=False)
    detachKeys = fields.String(load_default=None)


def _peer_hung_up(sock) -> bool:
    """POLLHUP: the client closed its end (a half-close for stdin EOF is not a hang-up)."""
    poller = select.poll()
    poller.register(sock, select.POLLHUP)
    return any(ev & select.POLLHUP for _, ev in poller.poll(0))


@bp.post("/containers/<ref>/attach")
def attach_container(ref):
    """Hijacked attach: `101 UPGRADED` when the client asked to upgrade (docker CLI, docker-py), a raw
    200 stream otherwise; then the connection carries stdin one way and output the other."""
    from app.runtime.attach import parse_detach_keys, relay
    from app.runtime.logs import follow, messages, render, select as select_logs
    q = load_query(AttachQuery(), request.args)
    containers = _containers()
    row = containers.resolve(ref)
    if row["state"] == "paused":
        raise Conflict(f"container {ref} is paused, unpause the container before attach.")
    if row["state"] == "restarting":
        raise Conflict(f"container {ref} is restarting, wait until the container is running.")
    keys = parse_detach_keys(q["detachKeys"])
    hijack = request.environ.get("berth.hijack")
    if hijack is None:
        raise NotImplemented_("attach needs berth's HTTP server (a connection that can be taken over)")
    cid = row["id"]
    config = json.loads(row["config"])
    tty = bool(config.get("Tty"))
    multiplexed = not tty and _version_at_least(request.environ.get("berth.api_version", "1.45"), (1, 42))
    media = "application/vnd.docker.multiplexed-stream" if multiplexed else "application/vnd.docker.raw-stream"
    if "upgrade" in request.headers.get("Connection", "").lower() or request.headers.get("Upgrade"):
        sock, reader = hijack("101 UPGRADED", [("Content-Type", media), ("Connection", "Upgrade"),
                                                ("Upgrade", "tcp")])
    else:
        sock, reader = hijack("200 OK", [("Content-Type", media)])
    streams = tuple(s for s in ("stdout", "stderr") if q[s])
    log_path = containers.monitor.files(cid, containers.bundle(cid)).log
    fh = open(log_path, "rb") if q["logs"] and os.path.exists(log_path) else None
    try:
        if fh and streams:
            history = b"".join(render(msg, False, tty) for msg in select_logs(messages(fh), 0, 0, -1, streams))
            if history:
                # docker-py reads the 101 head through a buffered reader and then reads the raw socket:
                # bytes that arrive with the head are lost to it. Let the head go out on its own first.
                time.sleep(HIJACK_HEAD_GRACE)
                sock.sendall(history)
        if q["stream"]:
            containers.record_attach(cid, "attach")
            conn = containers.attach_connection(cid, lambda: _peer_hung_up(sock))
            if conn is not None:
                detached = threading.Event()
                output = None
                if q["logs"]:     # history came from the log: follow the same file on, gap- and overlap-free
                    fh = fh or open(log_path, "rb")
                    output = follow(fh, lambda: not detached.is_set() and containers.is_running(cid), streams,
                                    tty=tty)
                was_detached = relay(conn, sock, reader, tty=tty, stdout=q["stdout"], stderr=q["stderr"],
                                     stdin=q["stdin"], stdin_once=bool(config.get("StdinOnce")),
                                     detach_keys=keys, output=output, detached=detached)
                if was_detached:
                    containers.record_attach(cid, "detach")
    except OSError:
        pass                                  # the client went away
    finally:
        if fh:
            fh.close()
    return Response(b"")                      # ignored: the connection was taken over


def _version_at_least(version: str, minimum: tuple[int, int]) -> bool:
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0)) >= minimum


class ResizeQuery(Schema):
    h = fields.Integer(load_default=0)
    w = fields.Integer(load_default=0)


@bp.post("/containers/<ref>/resize")
def resize_container(ref):
    q = load_query(ResizeQuery(), request.args)
    if q["h"] < 0 or q["w"] < 0:
        raise InvalidParameter("invalid terminal size: height and width must be positive")
    _containers().resize(ref, q["h"], q["w"])
    return Response(status=200)
