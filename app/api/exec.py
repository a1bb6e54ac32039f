"""Exec endpoints (moby api/server/router/container/exec.go): create, start (hijacked like attach),
resize and inspect. The runtime is app/runtime/containers/exec.py."""
from __future__ import annotations

import base64
import threading

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import load_query
from app.api.schemas import decode, parse_body, read_body
from app.api.schemas.exec import ExecOptions, ExecStartOptions
from app.errors import BerthError, InvalidParameter, NotImplemented_
from app.runtime.containers.attach import frame
from app.streams import admit_stream, peer_hung_up
from app.version import api_version_tuple

bp = Blueprint("exec", __name__)


def _containers():
    return current_engine().containers


def _api_at_least(major: int, minor: int) -> bool:
    return api_version_tuple(request.environ.get("berth.api_version", "1.45")) >= (major, minor)


def _body(schema) -> dict:
    """moby's ReadJSON: an empty body is no error (exec start is often sent without one)."""
    data = read_body(request.environ, request.stream, current_engine().config.max_json_body)
    if not data.strip():
        return {}
    return decode(schema, parse_body(data))


@bp.post("/containers/<ref>/exec")
def exec_create(ref):
    body = _body(ExecOptions())
    eid = _containers().exec_create(ref, body, console_size_allowed=_api_at_least(1, 42))
    return jsonify({"Id": eid}), 201


@bp.post("/exec/<eid>/start")
def exec_start(eid):
    body = _body(ExecStartOptions())
    containers = _containers()
    ex, _ = containers.startable_exec(eid)          # 404 / 409 as HTTP errors, before any hijack
    console = body.get("ConsoleSize") if body.get("Tty") and _api_at_least(1, 42) else None
    console = console if console and any(console) else None
    if body.get("Detach"):
        containers.exec_start(eid, attach=None, console_size=console)
        return Response(b"", status=200)
    hijack = request.environ.get("berth.hijack")
    if hijack is None:
        raise NotImplemented_("exec start needs berth's HTTP server (a connection that can be taken over)")
    from app.common.detachkeys import parse_detach_keys
    keys = parse_detach_keys(ex.config.get("detach_keys") or None)
    tty = bool(body.get("Tty"))                   # moby frames by the start request's Tty
    media = ("application/vnd.docker.multiplexed-stream" if not tty and _api_at_least(1, 42)
             else "application/vnd.docker.raw-stream")
    upgrade = "upgrade" in request.headers.get("Connection", "").lower() or bool(request.headers.get("Upgrade"))
    stream = admit_stream(request.environ, half_close_counts=False, kind="exec")
    if upgrade:
        sock, reader = hijack("101 UPGRADED", [("Content-Type", media), ("Connection", "Upgrade"),
                                                ("Upgrade", "tcp")])
    else:
        sock, reader = hijack("200 OK", [("Content-Type", media)])

    def run():
        _run_exec(containers, eid, ex.config, sock, reader, tty, keys, console, stream)
        yield b""                                 # ignored: the connection was taken over

    if stream is None:
        for _ in run():
            pass
        return Response(b"")
    return Response(run())


def _run_exec(containers, eid, config, sock, reader, tty, keys, console, stream):
    from app.runtime.containers.attach import relay
    got = []
    try:
        containers.exec_start(eid, attach=got.append, console_size=console)
    except BerthError as err:
        # moby has hijacked already: the error goes to the client as output, then the stream ends
        text = f"{err}\r\n".encode()
        try:
            sock.sendall(text if tty else frame(1, text))
        except OSError:
            pass
        for conn in got:
            conn.close()
        return
    conn = got[0]
    if stream is not None:
        stream.on_gone(conn.close)           # a departed client ends the relay; the exec runs on
    else:
        def watch():
            while not peer_hung_up(sock, False):
                if conn.session.done.wait(0.2):
                    return
            conn.close()
        threading.Thread(target=watch, daemon=True).start()
    try:
        detached = relay(conn, sock, reader, tty=tty, stdout=config["open_stdout"], stderr=config["open_stderr"],
                         stdin=config["open_stdin"], stdin_once=True, detach_keys=keys)
    except OSError:
        detached = False
    if detached:
        containers.record_exec_detach(eid)


@bp.get("/exec/<eid>/json")
def exec_inspect(eid):
    ex = _containers().get_exec(eid)
    c = ex.config
    keys = c.get("detach_keys") or ""
    if keys:
        from app.common.detachkeys import parse_detach_keys
        keys = base64.b64encode(parse_detach_keys(keys)).decode()   # moby's []byte: base64 in JSON
    return jsonify({
        "ID": ex.id, "Running": ex.running, "ExitCode": ex.exit_code,
        "ProcessConfig": {"tty": c["tty"], "entrypoint": c["entrypoint"], "arguments": c["arguments"],
                          "privileged": c["privileged"], "user": c["user"]},
        "OpenStdin": c["open_stdin"], "OpenStderr": c["open_stderr"], "OpenStdout": c["open_stdout"],
        "CanRemove": False, "ContainerID": ex.container_id, "DetachKeys": keys, "Pid": ex.pid,
    })


class ResizeQuery(Schema):
    h = fields.Integer(load_default=0)
    w = fields.Integer(load_default=0)


@bp.post("/exec/<eid>/resize")
def exec_resize(eid):
    try:
        q = load_query(ResizeQuery(), request.args)
    except InvalidParameter:
        raise InvalidParameter(f'invalid resize height "{request.args.get("h", "")}"') from None
    if not 0 <= q["h"] < 1 << 32:
        raise InvalidParameter(f'invalid resize height "{request.args.get("h")}"')
    if not 0 <= q["w"] < 1 << 32:
        raise InvalidParameter(f'invalid resize width "{request.args.get("w")}"')
    _containers().exec_resize(eid, q["h"], q["w"])
    return Response(status=200)
