"""Container lifecycle endpoints over app/runtime/containers/: create, start, stop, kill, wait,
remove, inspect, logs, pause, rename, restart, top, changes, export, prune. Listing is in
container_list.py, attach and resize in container_attach.py."""
from __future__ import annotations

import json
import os

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.common.timeparse import rfc3339_nano
from app.streams import peer_hung_up
from app.api.params import DockerBool, Filters, Timestamp, load_query
from app.api.schemas import load_json_body
from app.api.schemas.container_create import CreateRequest
from app.errors import InvalidParameter, NotFound, NotImplemented_
from app.streams import admit_stream

bp = Blueprint("containers", __name__)


def _containers():
    return current_engine().containers


_HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


class CreateQuery(Schema):
    name = fields.String(load_default=None)
    platform = fields.String(load_default=None)


@bp.post("/containers/create")
def create_container():
    q = load_query(CreateQuery(), request.args)
    if q["platform"] and q["platform"].split("/")[:2] not in (["linux"], ["linux", _HOST_ARCH]):
        raise InvalidParameter(f'berth does not support platform "{q["platform"]}" yet: it runs linux/{_HOST_ARCH}')
    body = load_json_body(request, CreateRequest(), current_engine().config.max_json_body)
    cid = _containers().create(body, q["name"] or None)
    warnings = current_engine().volumes.create_warnings(cid, body.get("HostConfig") or {})   # issue 11: z/Z
    return jsonify({"Id": cid, "Warnings": warnings}), 201


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


class KillQuery(Schema):
    signal = fields.String(load_default=None)


@bp.post("/containers/<ref>/kill")
def kill_container(ref):
    _containers().kill(ref, load_query(KillQuery(), request.args)["signal"] or "KILL", wait=True)
    return Response(status=204)


class WaitQuery(Schema):
    condition = fields.String(load_default=None)


@bp.post("/containers/<ref>/wait")
def wait_container(ref):
    containers = _containers()         # captured: the body runs after the request context is gone
    condition = load_query(WaitQuery(), request.args)["condition"] or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f'invalid condition: "{condition}"')
    row = containers.resolve(ref)
    cid = row.id
    after_seq = current_engine().store.last_seq
    # A condition that already holds (a wait after the exit) is answered here: no stream thread and
    # hand-off for an answer that is ready. With `client_gone` always true it looks once and returns
    # None instead of blocking.
    code = containers.wait_condition(cid, condition, after_seq, lambda: True)
    if code is not None:
        return Response(json.dumps({"StatusCode": code, "Error": None}) + "\n", mimetype="application/json")
    sock = request.environ.get("berth.socket")      # to notice a client that stopped waiting
    # off the worker pool once the head is out (app/streams.py); None under the Flask test client
    stream = admit_stream(request.environ, kind="wait", reusable=True)
    client_gone = stream.client_gone if stream is not None else (lambda: peer_hung_up(sock))

    def body():
        yield b""   # the head goes out now: `docker run` calls /start only after seeing it
        code = containers.wait_condition(cid, condition, after_seq, client_gone)
        if code is None:
            return                  # daemon shutdown
        yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Response(body(), mimetype="application/json")


class RemoveQuery(Schema):
    force = DockerBool(load_default=False)
    v = DockerBool(load_default=False)
    link = DockerBool(load_default=False)


@bp.delete("/containers/<ref>")
@bp.delete("/containers/<ref>/<alias>")        # rm -l linker/alias
def remove_container(ref, alias=None):
    if alias is not None:
        ref = f"{ref}/{alias}"
    q = load_query(RemoveQuery(), request.args)
    if q["link"]:
        _containers().network.remove_link(ref)      # rm -l /linker/alias: the link only
        return Response(status=204)
    _containers().remove(ref, q["force"], volumes=q["v"])
    return Response(status=204)


def _rfc3339(ns: int) -> str:
    if not ns:
        return "0001-01-01T00:00:00Z"
    return rfc3339_nano(ns)


class InspectQuery(Schema):
    size = DockerBool(load_default=False)


@bp.get("/containers/<ref>/json")
def inspect_container(ref):
    q = load_query(InspectQuery(), request.args)
    containers = _containers()
    row = containers.resolve(ref)
    config, host_config = row.config, row.host_config
    images = current_engine().images
    try:
        image_row = images.resolve(row.image_id)[0]
    except NotFound:
        image_row = None
    image_cfg = (image_row.config.get("config") or {}) if image_row else {}
    from app.runtime.containers.spec import command_of
    args = command_of(image_cfg, config)
    state = row.state
    bundle = containers.bundle(row.id)
    merged = {**image_cfg, **{k: v for k, v in config.items() if v not in (None, "", [], {})}}
    merged.update({"Image": row.image, "Labels": row.labels,
                   "Hostname": config.get("Hostname") or row.id[:12], "Tty": bool(config.get("Tty")),
                   "OpenStdin": bool(config.get("OpenStdin")), "Cmd": config.get("Cmd") or image_cfg.get("Cmd"),
                   "Entrypoint": config.get("Entrypoint") or image_cfg.get("Entrypoint")})
    sizes = {}
    if q["size"]:      # `docker inspect -s`: moby's GetContainerLayerSize, both fields always present
        from app.common.fsutil import dir_size
        size_rw = dir_size(os.path.join(bundle, "upper"))
        sizes = {"SizeRw": size_rw, "SizeRootFs": size_rw + (image_row.size if image_row else 0)}
    return jsonify({
        "Id": row.id, "Created": _rfc3339(row.created_nano), "Path": args[0], "Args": args[1:],
        "State": {"Status": state, "Running": state in ("running", "paused", "restarting"), "Paused": state == "paused",
                  "Restarting": state == "restarting", "OOMKilled": bool(row.oom_killed), "Dead": state == "dead",
                  "Pid": row.pid if state in ("running", "paused") else 0, "ExitCode": row.exit_code,
                  "Error": row.error, "StartedAt": _rfc3339(row.started_nano),
                  "FinishedAt": _rfc3339(row.finished_nano)},
        "Image": row.image_id, "ResolvConfPath": os.path.join(bundle, "resolv.conf"),
        "HostnamePath": os.path.join(bundle, "hostname"), "HostsPath": os.path.join(bundle, "hosts"),
        "LogPath": os.path.join(bundle, "userdata", "ctr.log"), "Name": "/" + row.name,
        "RestartCount": row.restart_count, "Driver": "overlay2", "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": containers.exec_ids(row.id),
        "HostConfig": {"NetworkMode": "default", "LogConfig": {"Type": "json-file", "Config": {}}, "Runtime": "runc",
                       "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
                       "Binds": None, "PortBindings": {}, **host_config},
        "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": os.path.join(bundle, "upper"),
                                                     "WorkDir": os.path.join(bundle, "work"),
                                                     "MergedDir": os.path.join(bundle, "rootfs")}},
        **sizes, "Mounts": current_engine().volumes.container_mounts(row.id), "Config": merged,
        "NetworkSettings": current_engine().networks.settings(row),
        **current_engine().restarts.inspect_extra(row),     # {"Berth": {"NextRestart": ...}} while one is pending
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
    from app.runtime.containers.logs import follow, messages, render, select
    q = load_query(LogsQuery(), request.args)
    if not q["stdout"] and not q["stderr"]:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tail = -1 if q["tail"] in ("all", "", None) else (int(q["tail"]) if q["tail"].lstrip("-").isdigit() else -1)
    containers = _containers()
    row = containers.resolve(ref)
    cid = row.id
    if (row.host_config.get("LogConfig") or {}).get("Type") == "none":
        raise NotImplemented_("configured logging driver does not support reading")
    tty = bool(row.config.get("Tty"))
    streams = tuple(s for s in ("stdout", "stderr") if q[s])
    path = containers.monitor.files(cid, containers.bundle(cid)).log
    stream = admit_stream(request.environ, kind="logs") if q["follow"] else None
    client_gone = stream.client_gone if stream is not None else (lambda: False)

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
                yield from follow(fh, lambda: not client_gone() and containers.is_running(cid), streams, q["since"] or 0,
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


class RenameQuery(Schema):
    name = fields.String(load_default="")


@bp.post("/containers/<ref>/rename")
def rename_container(ref):
    _containers().rename(ref, load_query(RenameQuery(), request.args)["name"])
    return Response(status=204)


@bp.post("/containers/<ref>/restart")
def restart_container(ref):
    q = load_query(StopQuery(), request.args)
    _containers().restart(ref, q["t"])
    return Response(status=204)


class TopQuery(Schema):
    ps_args = fields.String(load_default=None)


@bp.get("/containers/<ref>/top")
def top_container(ref):
    return jsonify(_containers().top(ref, load_query(TopQuery(), request.args)["ps_args"] or "-ef"))


@bp.get("/containers/<ref>/changes")
def container_changes(ref):
    return jsonify(_containers().changes(ref) or None)


@bp.get("/containers/<ref>/export")
def export_container(ref):
    return Response(_containers().export(ref), mimetype="application/x-tar")


class PruneQuery(Schema):
    filters = Filters(frozenset({"until", "label", "label!"}), load_default=dict)


@bp.post("/containers/prune")
def prune_containers():
    from app.common.timeparse import TimeParseError, parse_timestamp
    f = load_query(PruneQuery(), request.args)["filters"]
    until = None
    for value in f.get("until", ()):
        try:
            until = parse_timestamp(value)
        except TimeParseError as err:
            raise InvalidParameter(str(err)) from err
    return jsonify(_containers().prune(until, set(f.get("label", ())), set(f.get("label!", ()))))
