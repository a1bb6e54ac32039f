"""Streams never starve the server (issue 8, deliverable 2), against a real daemon.

Each test failed on the code before: the fixed pool of 64 cheroot workers was held by abandoned
attaches, /events, /wait and logs -f streams, by slowloris heads and by silent connections, and 100
parallel `docker run`s deadlocked."""
from __future__ import annotations

import json
import socket
import threading
import time

import docker
import pytest

from tests.integration.conftest import until



def _connect(path: str, timeout: float = 10) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def _read_head(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _open_stream(path: str, request: str) -> socket.socket:
    s = _connect(path)
    s.sendall(request.encode())
    head = _read_head(s)
    assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 101")), head[:200]
    return s


def ping_seconds(path: str, timeout: float = 5) -> float:
    """Time for a /_ping on a new connection; fails (socket timeout) if the daemon does not answer."""
    started = time.monotonic()
    s = _connect(path, timeout)
    try:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        s.close()
    return time.monotonic() - started


def server_counts(d) -> dict:
    client = docker.APIClient(base_url=d.host, version="1.45", timeout=10)
    try:
        return client.info()["BerthServer"]
    finally:
        client.close()


def _import_busybox(d, busybox_tar) -> None:
    d.cli("import", busybox_tar, "busybox:latest", check=True)


def _silent_container(d) -> str:
    client = docker.APIClient(base_url=d.host, version="1.45", timeout=30)
    try:
        cid = client.create_container("busybox", ["sleep", "300"])["Id"]
        client.start(cid)
        return cid
    finally:
        client.close()


def _cleanup(d) -> None:
    from tests.integration.conftest import remove_all_containers
    try:
        if d.proc.poll() is None:
            remove_all_containers(d)
    finally:
        d.stop()


@pytest.fixture
def busy_daemon(make_daemon, busybox_tar):
    """A daemon with busybox, started with the given flags."""
    made = []

    def start(*flags):
        d = make_daemon(subdir=f"d{len(made)}").start(*flags)
        made.append(d)
        _import_busybox(d, busybox_tar)
        return d

    yield start
    for d in made:
        _cleanup(d)


@pytest.mark.parametrize("flags", [("--threads", "8"), ()], ids=["threads-8", "default"])
def test_200_abandoned_attaches_to_a_silent_container_leave_ping_answering(busy_daemon, flags):
    d = busy_daemon(*flags)
    cid = _silent_container(d)
    request = (f"POST /v1.45/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\n"
               "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    for _ in range(200):
        _open_stream(d.sock, request).close()      # the client leaves; the container says nothing
    took = ping_seconds(d.sock)
    assert took < 0.5, f"/_ping took {took:.3f}s after 200 abandoned attaches"
    assert until(lambda: server_counts(d)["Streams"] == 0, timeout=3), server_counts(d)


@pytest.mark.parametrize("kind", ["events", "wait", "logs"])
def test_abandoned_streams_are_noticed_within_seconds(busy_daemon, kind):
    d = busy_daemon("--threads", "8")
    cid = _silent_container(d)
    request = {
        "events": "GET /v1.45/events HTTP/1.1\r\nHost: x\r\n\r\n",
        "wait": f"POST /v1.45/containers/{cid}/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "logs": f"GET /v1.45/containers/{cid}/logs?follow=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    }[kind]
    threads_before = server_counts(d)["Threads"]
    socks = [_open_stream(d.sock, request) for _ in range(100)]   # more than the 8 workers
    assert server_counts(d)["Streams"] == 100
    assert ping_seconds(d.sock) < 0.5
    for s in socks:
        s.close()
    started = time.monotonic()
    assert until(lambda: server_counts(d)["Streams"] == 0, timeout=5), server_counts(d)
    assert time.monotonic() - started < 2.5
    assert until(lambda: server_counts(d)["Threads"] <= threads_before + 2, timeout=5), server_counts(d)


def _run_like_the_cli(host: str, results: list, i: int) -> None:
    """What `docker run --rm busybox sleep 1` does: create, attach (hijacked), wait (removed), start,
    read the attach to its end, take the exit code from the wait."""
    client = docker.APIClient(base_url=host, version="1.45", timeout=120)
    try:
        cid = client.create_container("busybox", ["sleep", "1"], host_config=client.create_host_config(auto_remove=True))["Id"]
        attach = client.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
        waited: list = []
        waiter = threading.Thread(target=lambda: waited.append(client.wait(cid, condition="removed")))
        waiter.start()
        client.start(cid)
        raw = getattr(attach, "_sock", attach)
        while raw.recv(4096):
            pass
        raw.close()
        waiter.join(120)
        results[i] = waited[0]["StatusCode"] if waited else "no wait result"
    except Exception as err:              # reported in the assertion below
        results[i] = f"{type(err).__name__}: {err}"
    finally:
        client.close()


def test_300_parallel_runs_all_finish(busy_daemon):
    d = busy_daemon()
    n = 300
    results: list = [None] * n
    threads = [threading.Thread(target=_run_like_the_cli, args=(d.host, results, i)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, 150 - (time.monotonic() - started)))
    took = time.monotonic() - started
    failed = [r for r in results if r != 0]
    assert not failed, f"{len(failed)} of {n} runs failed after {took:.0f}s: {failed[:5]}"
    assert until(lambda: server_counts(d)["Streams"] == 0, timeout=5)


def test_100_slowloris_connections_while_ping_keeps_answering(make_daemon):
    d = make_daemon().start()            # default flags: --head-timeout 10
    try:
        slow = [_connect(d.sock) for _ in range(100)]
        head = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
        for second in range(6):              # a byte of the head every second, as slowloris does
            for s in slow:
                try:
                    s.send(head[second:second + 1])
                except OSError:
                    pass
            took = ping_seconds(d.sock)
            assert took < 0.5, f"/_ping took {took:.3f}s with 100 slow heads"
            time.sleep(1)
        # past the head deadline the slow ones are answered 408 and closed
        s = slow[0]
        s.settimeout(12)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert data.startswith(b"HTTP/1.1 408")
        for s in slow:
            s.close()
    finally:
        d.stop()


def test_200_silent_connections_then_ping_answers_at_once(make_daemon):
    d = make_daemon().start()
    try:
        silent = [_connect(d.sock) for _ in range(200)]
        time.sleep(0.2)
        took = ping_seconds(d.sock)
        assert took < 0.5, f"/_ping took {took:.3f}s behind 200 silent connections"
        for s in silent:
            s.close()
    finally:
        d.stop()


def test_bounds_answer_503_and_431(make_daemon):
    d = make_daemon().start("--max-streams", "3", "--max-connections", "20")
    try:
        events = [_open_stream(d.sock, "GET /v1.45/events HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(3)]
        s = _connect(d.sock)
        s.sendall(b"GET /v1.45/events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = _read_head(s)
        assert head.startswith(b"HTTP/1.1 503"), head
        body = head.split(b"\r\n\r\n", 1)[1]
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(body) < length:
            body += s.recv(4096)
        assert "too many concurrent streams" in json.loads(body)["message"]
        s.close()

        silent = [_connect(d.sock) for _ in range(20)]

        def refused() -> bool:      # once the daemon has accepted all 20 (a loaded machine is slow)
            extra = _connect(d.sock, timeout=1)
            try:
                reply = _read_head(extra)
                return reply.startswith(b"HTTP/1.1 503") and b"too many open connections" in reply
            except OSError:
                return False
            finally:
                extra.close()
        assert until(refused, timeout=15)
        for s in silent:
            s.close()
        time.sleep(0.3)

        big = _connect(d.sock)
        big.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n")
        assert _read_head(big).startswith(b"HTTP/1.1 431")
        big.close()
        for s in events:
            s.close()
        assert ping_seconds(d.sock) < 0.5
    finally:
        d.stop()


def test_sequential_runs_leave_no_store_readers_behind(busy_daemon):
    """Each `docker run --rm` (create, attach, wait?condition=removed, start) has two stream threads
    that read the event store. Their reader connections were kept after the threads ended: two more
    per run, for good (~300 KiB of RSS each run). Now a live thread holds at most one and ended
    threads leave at most IDLE_READERS idle ones."""
    from app.events.store import IDLE_READERS
    d = busy_daemon("--threads", "8")
    client = docker.APIClient(base_url=d.host, version="1.45", timeout=30)
    try:
        for _ in range(30):
            cid = client.create_container("busybox", ["true"],
                                          host_config=client.create_host_config(auto_remove=True))["Id"]
            attach = client.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
            waited: list = []
            waiter = threading.Thread(target=lambda: waited.append(client.wait(cid, condition="removed")))
            waiter.start()
            client.start(cid)
            raw = getattr(attach, "_sock", attach)
            while raw.recv(4096):
                pass
            raw.close()
            waiter.join(30)
            assert waited and waited[0]["StatusCode"] == 0
        assert until(lambda: server_counts(d)["Streams"] == 0, timeout=3)
        counts = server_counts(d)
        assert counts["StoreReaders"] <= counts["Threads"] + IDLE_READERS, counts
    finally:
        client.close()


def _read_chunked(s: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    """A chunked body from `data` + the socket, up to its terminator: (body, bytes after it)."""
    body = b""
    while True:
        while b"\r\n" not in data:
            more = s.recv(4096)
            assert more, "the connection closed inside the chunked body"
            data += more
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(data) < size + 2:
            more = s.recv(4096)
            assert more, "the connection closed inside a chunk"
            data += more
        if size == 0:
            return body, data[2:]
        body, data = body + data[:size], data[size + 2:]


def test_a_finished_wait_gives_its_connection_back_for_the_next_request(busy_daemon):
    """The /wait stream runs off the pool; once its chunked response has ended, its kept-alive
    connection goes back to the gate (it was closed, and clients such as docker-py had to reconnect
    for their next call). A client that asked for close, or left while waiting, gets no reuse. A wait
    whose condition already holds is answered at once, without a stream."""
    d = busy_daemon("--threads", "8")
    client = docker.APIClient(base_url=d.host, version="1.45", timeout=30)
    try:
        cid = client.create_container("busybox", ["sleep", "300"])["Id"]

        def wait_request(extra: str = "") -> bytes:
            return (f"POST /v1.45/containers/{cid}/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    f"{extra}\r\n").encode()

        s = _connect(d.sock)
        for _ in range(3):          # the same connection, again and again
            client.start(cid)
            s.sendall(wait_request())
            head = _read_head(s)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert b"transfer-encoding: chunked" in head.lower()        # the stream, not the shortcut
            assert b"connection: close" not in head.lower()
            assert server_counts(d)["Streams"] == 1
            client.kill(cid)
            body, rest = _read_chunked(s, head.split(b"\r\n\r\n", 1)[1])
            assert json.loads(body)["StatusCode"] == 137 and rest == b""
        s.sendall(wait_request())   # exited: answered at once, without a stream
        head = _read_head(s)
        assert head.startswith(b"HTTP/1.1 200") and b"content-length:" in head.lower(), head
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"HTTP/1.1 200" in _read_head(s)
        assert until(lambda: server_counts(d)["Streams"] == 0, timeout=3)
        s.close()

        s = _connect(d.sock)        # Connection: close is honoured
        client.start(cid)
        s.sendall(wait_request("Connection: close\r\n"))
        head = _read_head(s)
        assert b"connection: close" in head.lower()
        client.kill(cid)
        _read_chunked(s, head.split(b"\r\n\r\n", 1)[1])
        assert s.recv(4096) == b""
        s.close()

        client.start(cid)
        before = server_counts(d)["Connections"]
        left = [_connect(d.sock) for _ in range(20)]    # wait, then leave before the exit
        for s in left:
            s.sendall(wait_request())
            assert _read_head(s).startswith(b"HTTP/1.1 200")
        assert server_counts(d)["Streams"] == 20
        for s in left:
            s.close()
        assert until(lambda: server_counts(d)["Streams"] == 0, timeout=3), server_counts(d)
        assert until(lambda: server_counts(d)["Connections"] <= before, timeout=3), server_counts(d)
        client.remove_container(cid, force=True)
    finally:
        client.close()
