"""`GET /containers/{id}/attach/ws`: attach over a WebSocket (RFC 6455), what docker-py's
`attach_socket(ws=True)` opens (over TCP; websocket-client cannot speak to a Unix socket).

As moby (golang.org/x/net/websocket in api/server/router/container/container_routes.go): the
handshake answers `101 Switching Protocols`; output goes out raw (never stdcopy-multiplexed), one
frame per piece, binary from API 1.28 on (text before); every text or binary frame the client sends
is written to the container's stdin; a close frame ends the attach. The relay itself is the one of
the hijacked attach (app/runtime/containers/attach.py), given a socket and a reader that frame and
unframe.
"""
from __future__ import annotations

import base64
import hashlib
import struct
import threading

from flask import Blueprint, Response, request

from app.api import current_engine
from app.api.container_attach import AttachQuery, _end_reservation
from app.api.params import load_query
from app.errors import Conflict, InvalidParameter, NotImplemented_
from app.streams import admit_stream
from app.version import api_version_tuple

bp = Blueprint("container_attach_ws", __name__)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_FRAME = 1 << 24            # a client frame above 16 MiB ends the attach (close 1009, "message too big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: final, unmasked."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def unmask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class WsSocket:
    """What the relay writes output to: each sendall is one frame (stdcopy headers stripped)."""

    def __init__(self, sock, opcode: int, multiplexed: bool):
        self.sock, self.opcode, self.multiplexed = sock, opcode, multiplexed
        self.lock = threading.Lock()

    def send_frame(self, opcode: int, payload: bytes) -> None:
        with self.lock:
            self.sock.sendall(encode_frame(opcode, payload))

    def sendall(self, data: bytes) -> None:
        if self.multiplexed:                 # the relay framed it for stdcopy: one frame per call
            data = data[8:]
        if data:
            self.send_frame(self.opcode, data)

    def shutdown(self, how) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

    def __getattr__(self, name):
        return getattr(self.sock, name)


class WsReader:
    """What the relay reads stdin from: the payloads of the client's data frames; b"" at a close
    frame or EOF. Pings are answered."""

    def __init__(self, reader, out: WsSocket):
        self.reader, self.out = reader, out

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.reader.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def read1(self, _limit: int = 0) -> bytes:
        try:
            while True:
                b0, b1 = self._exact(2)
                opcode, masked, n = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._exact(8))[0]
                if n > MAX_FRAME:
                    self._close(1009)
                    return b""
                key = self._exact(4) if masked else b""
                payload = self._exact(n) if n else b""
                if key:
                    payload = unmask(payload, key)
                if opcode == OP_CLOSE:
                    self._close(1000)
                    return b""
                if opcode == OP_PING:
                    self.out.send_frame(OP_PONG, payload)
                elif opcode in (OP_TEXT, OP_BINARY, OP_CONT) and payload:
                    return payload
        except (EOFError, OSError, ValueError):
            return b""

    def _close(self, code: int) -> None:
        try:
            self.out.send_frame(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass


def attach_websocket(ref):
    from app.common.detachkeys import parse_detach_keys
    from app.runtime.containers.attach import relay
    from app.runtime.containers.logs import messages, render, select as select_logs
    q = load_query(AttachQuery(), request.args)
    containers = current_engine().containers
    row = containers.resolve(ref)
    if row.state == "paused":
        raise Conflict(f"container {ref} is paused, unpause the container before attach.")
    key = request.headers.get("Sec-WebSocket-Key", "")
    if "websocket" not in request.headers.get("Upgrade", "").lower() or not key:
        raise InvalidParameter("attach/ws needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key)")
    keys = parse_detach_keys(q["detachKeys"])
    hijack = request.environ.get("berth.hijack")
    if hijack is None:
        raise NotImplemented_("attach needs berth's HTTP server (a connection that can be taken over)")
    cid, config = row.id, row.config
    tty = bool(config.get("Tty"))
    version = api_version_tuple(request.environ.get("berth.api_version", "1.45"))
    accept = base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()
    stream = admit_stream(request.environ, half_close_counts=False, kind="attach")
    waiter = containers.reserve_attach(cid) if q["stream"] else None
    try:
        sock, reader = hijack("101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                          ("Sec-WebSocket-Accept", accept)])
    except BaseException:
        _end_reservation(containers, cid, waiter)
        raise
    out = WsSocket(sock, OP_BINARY if version >= (1, 28) else OP_TEXT, multiplexed=not tty)
    ws_in = WsReader(reader, out)
    client_gone = stream.client_gone if stream is not None else (lambda: False)

    def run():
        try:
            streams = tuple(s for s in ("stdout", "stderr") if q[s])
            if q["logs"] and streams:
                path = containers.monitor.files(cid, containers.bundle(cid)).log
                try:
                    with open(path, "rb") as fh:
                        for msg in select_logs(messages(fh), 0, 0, -1, streams):
                            out.send_frame(out.opcode, render(msg, False, True))
                except FileNotFoundError:
                    pass
            if q["stream"]:
                containers.record_attach(cid, "attach")
                conn = containers.attach_connection(waiter, client_gone)
                if conn is not None:
                    if stream is not None:
                        stream.on_gone(conn.close)
                    if relay(conn, out, ws_in, tty=tty, stdout=q["stdout"], stderr=q["stderr"], stdin=q["stdin"],
                             stdin_once=bool(config.get("StdinOnce")), detach_keys=keys):
                        containers.record_attach(cid, "detach")
            ws_in._close(1000)
        except OSError:
            pass
        finally:
            _end_reservation(containers, cid, waiter)
            try:
                sock.close()
            except OSError:
                pass
        yield b""

    if stream is None:
        for _ in run():
            pass
        return Response(b"")
    return Response(run())


# Werkzeug routes a WebSocket upgrade only to a rule marked websocket=True (and a plain request only to
# one that is not): the same view under both, so a plain GET gets Docker's JSON 400 above.
bp.add_url_rule("/containers/<ref>/attach/ws", "attach_websocket", attach_websocket, methods=["GET"],
                websocket=True)
bp.add_url_rule("/containers/<ref>/attach/ws", "attach_websocket_plain", attach_websocket, methods=["GET"])
