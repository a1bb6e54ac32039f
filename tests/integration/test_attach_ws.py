"""Attach over a WebSocket (`GET /containers/{id}/attach/ws`) as docker-py opens it with
`attach_socket(ws=True)`: a daemon on tcp://127.0.0.1, real runc."""
from __future__ import annotations

import socket
import time

import pytest

websocket = pytest.importorskip("websocket")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tcp_client(make_daemon, busybox_tar):
    import docker
    port = _free_port()
    d = make_daemon()
    d.start(hosts=[d.host, f"tcp://127.0.0.1:{port}"])
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{port}", version="1.45")
    yield client
    for c in client.containers(all=True):
        client.remove_container(c["Id"], force=True)
    client.close()
    d.stop()


def _read_until(ws, wanted: bytes, timeout: float = 10) -> bytes:
    got, deadline = b"", time.monotonic() + timeout
    ws.settimeout(timeout)
    while wanted not in got and time.monotonic() < deadline:
        try:
            frame = ws.recv()
        except websocket.WebSocketConnectionClosedException:
            break
        got += frame if isinstance(frame, bytes) else frame.encode()
    return got


def test_docker_py_attach_socket_ws_relays_stdin_and_output(tcp_client):
    c = tcp_client.create_container("busybox", ["sh", "-c", "echo ready; while read line; do echo got:$line; done"],
                                    stdin_open=True)
    tcp_client.start(c)
    ws = tcp_client.attach_socket(c, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}, ws=True)
    try:
        ws.send_binary(b"hello\n")
        out = _read_until(ws, b"got:hello")
        assert b"got:hello" in out
        assert b"\x01\x00\x00\x00" not in out               # raw output, never stdcopy frames
        ws.send("second\n")                                  # a text frame is stdin too
        assert b"got:second" in _read_until(ws, b"got:second")
    finally:
        ws.close()


def test_attach_ws_with_logs_sends_the_history_and_ends_with_the_container(tcp_client):
    c = tcp_client.create_container("busybox", ["sh", "-c", "echo one; sleep 1; echo two"])
    tcp_client.start(c)
    time.sleep(0.3)
    ws = tcp_client.attach_socket(c, params={"stdout": 1, "logs": 1, "stream": 1}, ws=True)
    out = _read_until(ws, b"two")
    assert b"one" in out and b"two" in out
    ws.close()


def test_attach_ws_without_an_upgrade_is_400(tcp_client):
    import requests
    c = tcp_client.create_container("busybox", ["true"])
    r = requests.get(tcp_client.base_url + f"/v1.45/containers/{c['Id']}/attach/ws")
    assert r.status_code == 400 and "WebSocket upgrade" in r.json()["message"]
    r = requests.get(tcp_client.base_url + "/v1.45/containers/nothere/attach/ws")
    assert r.status_code == 404
