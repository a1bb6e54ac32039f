"""Hijacked container streams: attach (stdin/stdout/stderr over the taken-over connection) and the
TTY resize that goes with it. The relay itself is app/runtime/attach.py."""
from __future__ import annotations

import os
import threading
import time

from flask import Blueprint, Response, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, load_query
from app.errors import Conflict, InvalidParameter, NotImplemented_
from app.streams import admit_stream, peer_hung_up
from app.version import api_version_tuple

bp = Blueprint("container_attach", __name__)


def _containers():
    return current_engine().containers


HIJACK_HEAD_GRACE = 0.05


class AttachQuery(Schema):
    stream = DockerBool(load_default=False)
    stdin = DockerBool(load_default=False)
    stdout = DockerBool(load_default=False)
    stderr = DockerBool(load_default=False)
    logs = DockerBool(load_default=False)
    detachKeys = fields.String(load_default=None)


@bp.post("/containers/<ref>/attach")
def attach_container(ref):
    """Hijacked attach: `101 UPGRADED` when the client asked to upgrade (docker CLI, docker-py), a raw
    200 stream otherwise; then the connection carries stdin one way and output the other."""
    from app.common.detachkeys import parse_detach_keys
    q = load_query(AttachQuery(), request.args)
    containers = _containers()
    row = containers.resolve(ref)
    if row.state == "paused":
        raise Conflict(f"container {ref} is paused, unpause the container before attach.")
    if row.state == "restarting":
        raise Conflict(f"container {ref} is restarting, wait until the container is running.")
    keys = parse_detach_keys(q["detachKeys"])
    hijack = request.environ.get("berth.hijack")
    if hijack is None:
        raise NotImplemented_("attach needs berth's HTTP server (a connection that can be taken over)")
    cid = row.id
    config = row.config
    tty = bool(config.get("Tty"))
    multiplexed = not tty and api_version_tuple(request.environ.get("berth.api_version", "1.45")) >= (1, 42)
    media = "application/vnd.docker.multiplexed-stream" if multiplexed else "application/vnd.docker.raw-stream"
    upgrade = "upgrade" in request.headers.get("Connection", "").lower() or bool(request.headers.get("Upgrade"))
    # The relay runs on a stream thread of its own, off the worker pool (app/streams.py); None under
    # a server without streams: then it runs here, as before. A read half-close is not a departure:
    # the docker CLI half-closes as soon as it has no stdin to send (app/streams.py).
    stream = admit_stream(request.environ, half_close_counts=False, kind="attach")
    # in place before the head goes out: `docker run` starts the container as soon as it has the head
    waiter = containers.reserve_attach(cid) if q["stream"] else None
    try:
        if upgrade:
            sock, reader = hijack("101 UPGRADED", [("Content-Type", media), ("Connection", "Upgrade"),
                                                    ("Upgrade", "tcp")])
        else:
            sock, reader = hijack("200 OK", [("Content-Type", media)])
    except BaseException:
        _end_reservation(containers, cid, waiter)
        raise

    def run():
        try:
            _attach(containers, cid, q, sock, reader, waiter, tty, keys, config, stream)
        finally:
            _end_reservation(containers, cid, waiter)
        yield b""                             # ignored: the connection was taken over

    if stream is None:
        for _ in run():
            pass
        return Response(b"")
    return Response(run())


def _end_reservation(containers, cid, waiter):
    if waiter is not None:
        containers.cancel_attach(cid, waiter)
        if waiter.conn is not None:
            waiter.conn.close()             # unsubscribes, if the relay has not already


def _attach(containers, cid, q, sock, reader, waiter, tty, keys, config, stream):
    from app.runtime.containers.attach import relay
    from app.runtime.containers.logs import follow, messages, render, select as select_logs
    streams = tuple(s for s in ("stdout", "stderr") if q[s])
    log_path = containers.monitor.files(cid, containers.bundle(cid)).log
    fh = open(log_path, "rb") if q["logs"] and os.path.exists(log_path) else None
    if stream is not None:
        client_gone = stream.client_gone
    else:
        def client_gone():
            return peer_hung_up(sock, not q["stdin"])
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
            conn = containers.attach_connection(waiter, client_gone)
            if conn is not None:
                detached = threading.Event()
                if stream is not None:
                    # a departed client ends the relay even when the container prints nothing
                    stream.on_gone(conn.close)
                output = None
                if q["logs"] and (fh or os.path.exists(log_path)):   # not with the `none` log driver
                    # history came from the log: follow the same file on, gap- and overlap-free
                    fh = fh or open(log_path, "rb")
                    output = follow(fh, lambda: not detached.is_set() and not containers.closing.is_set()
                                    and not client_gone() and containers.is_running(cid), streams, tty=tty)
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
