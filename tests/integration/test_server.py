"""The HTTP server in-process (cheroot + our gateway) with real clients: hijack and live event tails.

These serve the real app on a real Unix socket; events are appended straight to the store because
no API call of this stage appends container events yet.
"""
import json
import os
import socket
import threading
import time

import pytest
from flask import Blueprint, Response, request

from app import create_app
from app.config import Config
from app.engine import Engine
from app.events.model import NewEvent
from app.server import BerthServer, close_listeners, open_listeners


def _hijack_blueprint():
    bp = Blueprint("hijack_test", __name__)

    @bp.post("/test/echo")
    def echo():
        request.get_data()
        sock, reader = request.environ["berth.hijack"](
            "101 UPGRADED", [("Content-Type", "application/vnd.docker.raw-stream"), ("Connection", "Upgrade"),
                             ("Upgrade", "tcp")])
        received = b""
        while chunk := reader.read1(65536):       # until the client half-closes
            received += chunk
            sock.sendall(chunk.upper())
        sock.sendall(b"|bye")
        sock.shutdown(socket.SHUT_RDWR)
        return Response(b"never sent")

    return bp


@pytest.fixture
def served(workdir):
    config = Config(data_root=os.path.join(workdir, "root"), hosts=[f"unix://{workdir}/s.sock"])
    engine = Engine(config).start()
    flask_app = create_app(config, engine)
    flask_app.register_blueprint(_hijack_blueprint())
    listeners = open_listeners(config.hosts)
    server = BerthServer(listeners[0], flask_app, threads=16)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield engine, f"{workdir}/s.sock"
    engine.begin_shutdown()
    server.stop()
    engine.close()
    close_listeners(listeners)


def _client(sock_path):
    import docker
    return docker.DockerClient(base_url="unix://" + sock_path, version="1.45", timeout=30)


def test_hijack_hands_the_raw_socket_to_the_handler(served):
    _, path = served
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(b"POST /v1.45/test/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              b"Content-Length: 0\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Upgrade: tcp" in head and b"Api-Version" not in head  # the handler wrote this head itself
    s.sendall(b"hello ")
    s.sendall(b"world")
    s.shutdown(socket.SHUT_WR)                      # stdin EOF, as `docker run` without -i does
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    assert out == b"HELLO WORLD|bye"                # nothing of the view's own response leaks out
    s.close()
    assert _client(path).ping() is True             # and the server goes on serving


def test_live_tail_receives_new_events(served):
    engine, path = served
    client = _client(path)
    stream = client.events(decode=True, filters={"type": "container"})
    got = []
    reader = threading.Thread(target=lambda: got.extend(e for _, e in zip(range(2), stream)))
    reader.start()
    time.sleep(0.3)
    engine.store.append([NewEvent("volume", "create", "v", {"driver": "local"})])
    engine.store.append([NewEvent("container", "start", "a" * 64, {"name": "a", "image": "busybox"})])
    engine.store.append([NewEvent("container", "die", "a" * 64, {"name": "a", "image": "busybox", "exitCode": "3"})])
    reader.join(10)
    stream.close()
    assert [(e["Action"], e["Actor"]["Attributes"].get("exitCode")) for e in got] == [("start", None), ("die", "3")]


def test_replay_then_tail_has_no_gap(served):
    engine, path = served
    total = 1500
    for i in range(500):  # history before the subscriber arrives
        engine.store.append([NewEvent("volume", "create", f"v{i}", {"driver": "local"})])

    def writer():
        for i in range(500, total):
            engine.store.append([NewEvent("volume", "create", f"v{i}", {"driver": "local"})])

    stream = _client(path).events(decode=True, since=0)
    t = threading.Thread(target=writer)
    t.start()
    names = []
    for event in stream:
        names.append(event["Actor"]["ID"])
        if len(names) == total:
            break
    stream.close()
    t.join()
    assert names == [f"v{i}" for i in range(total)]


def test_until_in_the_future_ends_the_stream_by_itself(served):
    engine, path = served
    until = time.time() + 1.5
    result = []
    t = threading.Thread(target=lambda: result.extend(_client(path).events(decode=True, until=until)))
    t.start()
    time.sleep(0.4)
    engine.store.append([NewEvent("network", "create", "n1", {"name": "n1", "type": "bridge"})])
    t.join(10)
    assert not t.is_alive()
    assert [e["Actor"]["ID"] for e in result] == ["n1"]
    assert time.time() >= until


def test_disconnected_subscriber_is_released(served):
    engine, path = served
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    assert engine.event_listeners == 1
    assert _client(path).info()["NEventsListener"] == 1
    s.close()
    deadline = time.time() + 5
    while engine.event_listeners and time.time() < deadline:
        time.sleep(0.05)
    assert engine.event_listeners == 0


def test_events_stream_is_chunked_json_lines(served):
    engine, path = served
    engine.store.append([NewEvent("image", "tag", "sha256:" + "c" * 64, {"name": "x:1"})])
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(f"GET /v1.45/events?since=0&until={time.time():.6f} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              .encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Type: application/json" in head
    size, _, rest = body.partition(b"\r\n")
    line = rest[:int(size, 16)]
    assert json.loads(line)["status"] == "tag"
    assert body.endswith(b"0\r\n\r\n")
