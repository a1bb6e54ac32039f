"""Every archive-consuming endpoint (import, load's layers, load's outer archive) over a generated corpus
of hostile archives, against a real daemon, with a canary directory on the host that must stay untouched."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import tempfile
import time
import uuid

import pytest

from tests.integration.conftest import TEST_PREFIX, Daemon, ping
from tests.reliability import hostile

CANARY_BASE = os.path.join(tempfile.gettempdir(), "berth-test-canary-" + uuid.uuid4().hex[:6])
CORPUS = hostile.cases(CANARY_BASE)
WRAPS = {"import": lambda b: b, "load-layer": hostile.as_layer_in_load, "load-outer": hostile.as_outer_load}
ENDPOINT = {"import": "/v1.45/images/create?fromSrc=-&repo=hostile&tag=import",
            "load-layer": "/v1.45/images/load", "load-outer": "/v1.45/images/load"}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(sock: str, method: str, path: str, body: bytes | None = None, timeout: float = 30):
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def refusal(path: str, status: int, body: bytes) -> tuple[int, str]:
    """(status as classified, message) of a refused upload. Import answers with a status code; load
    answers 200 with the error as its last jsonmessage (moby's convention), classified here by the
    message: a bound names its flag. (0, "") when the upload was accepted."""
    if not path.startswith("/v1.45/images/load"):
        return (0, "") if status == 200 else (status, json.loads(body)["message"])
    assert status == 200, (path, status, body)
    last = json.loads(body.splitlines()[-1])
    if "errorDetail" not in last:
        return 0, ""
    message = last["errorDetail"]["message"]
    assert message == last["error"], body
    return (413 if "--max-upload-size" in message or "--min-free-space" in message else 400), message


def state(d: Daemon) -> tuple:
    """What a refused upload must not change: images, events, staging and layer dirs."""
    _, images = request(d.sock, "GET", "/v1.45/images/json?all=1")
    _, events = request(d.sock, "GET", f"/v1.45/events?since=0&until={time.time():.6f}")
    root = os.path.join(d.data_root, "image")
    return (json.loads(images), events.count(b"\n"), os.listdir(os.path.join(root, "tmp")),
            sorted(os.listdir(os.path.join(root, "layers"))))


@pytest.fixture(scope="module")
def canary():
    os.makedirs(os.path.join(CANARY_BASE, "etc"))
    with open(os.path.join(CANARY_BASE, "victim"), "w") as fh:
        fh.write("original\n")
    yield CANARY_BASE
    shutil.rmtree(CANARY_BASE, ignore_errors=True)


def _start(*flags: str):
    base = tempfile.mkdtemp(prefix=os.path.basename(TEST_PREFIX) + "hostile-")
    return Daemon(base).start(*flags), base


def _stop(d: Daemon, base: str) -> None:
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def hostile_daemon():
    d, base = _start()
    yield d
    _stop(d, base)


def _remove_images(d: Daemon) -> None:
    _, images = request(d.sock, "GET", "/v1.45/images/json?all=1")
    for image in json.loads(images):
        request(d.sock, "DELETE", f"/v1.45/images/{image['Id']}?force=1")


@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("case", list(CORPUS))
def test_hostile_archive_leaves_the_host_untouched(hostile_daemon, canary, case, wrap):
    d = hostile_daemon
    data, expected = CORPUS[case]
    before_canary = hostile.snapshot(canary)
    before = state(d)
    started = time.monotonic()
    status, body = request(d.sock, "POST", ENDPOINT[wrap], WRAPS[wrap](data), timeout=30)
    elapsed = time.monotonic() - started
    try:
        assert hostile.snapshot(canary) == before_canary, f"{case}/{wrap} changed the canary"
        assert ping(d.sock), "the daemon stopped answering"
        assert elapsed < 10, f"{case}/{wrap} took {elapsed:.1f}s"
        status, message = refusal(ENDPOINT[wrap], status, body)
        if expected == "harmless" and status == 0:
            return
        if expected == "too-large":
            assert status == 413, (case, wrap, status, body)
        else:
            assert 400 <= status < 500, (case, wrap, status, body)
        assert message, body
        assert state(d) == before, f"{case}/{wrap} left an image, an event or files behind"
    finally:
        if expected == "harmless":
            _remove_images(d)


def test_sparse_and_size_messages_name_the_entry_and_the_flag(hostile_daemon):
    status, body = request(hostile_daemon.sock, "POST", ENDPOINT["import"], CORPUS["sparse-gnu-1t"][0])
    assert status == 400 and 'invalid tar entry "big": sparse files are not supported' in json.loads(body)["message"]
    status, body = request(hostile_daemon.sock, "POST", ENDPOINT["import"], CORPUS["claims-100g"][0])
    message = json.loads(body)["message"]
    assert status == 413 and '"big"' in message and "--max-upload-size" in message, message


def test_gzip_bomb_is_stopped_by_the_upload_bound_in_time():
    d, base = _start("--max-upload-size", "4m")
    try:
        bomb = hostile.gzip_bomb(64 << 20)           # 64 MiB of zeros in ~64 KB
        for path in (ENDPOINT["import"], ENDPOINT["load-outer"], ENDPOINT["load-layer"]):
            payload = bomb if path != ENDPOINT["load-layer"] else hostile.as_layer_in_load(bomb)
            before = state(d)
            started = time.monotonic()
            status, body = request(d.sock, "POST", path, payload)
            assert time.monotonic() - started < 10, path
            status, message = refusal(path, status, body)
            assert status == 413 and "--max-upload-size" in message, (path, body)
            assert state(d) == before
    finally:
        _stop(d, base)


def test_free_space_floor_refuses_with_413():
    d, base = _start("--min-free-space", "1000t")
    try:
        status, body = request(d.sock, "POST", ENDPOINT["import"], hostile.make_tar(hostile.entry("f")))
        message = json.loads(body)["message"]
        assert status == 413 and "--min-free-space" in message, message
        assert json.loads(request(d.sock, "GET", "/v1.45/images/json")[1]) == []
    finally:
        _stop(d, base)


def test_upload_stops_writing_when_its_client_is_gone(hostile_daemon):
    """A client sends a header claiming 1 GiB, 2 MiB of it, then hangs up: staging is emptied at once."""
    d = hostile_daemon
    head = hostile.entry("big", data=b"", size=1 << 30)[0].tobuf(hostile.tarfile.PAX_FORMAT)
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    s.sendall(b"POST /v1.45/images/create?fromSrc=-&repo=gone HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n" % (len(head) + (1 << 30)) + head + bytes(2 << 20))
    tmp = os.path.join(d.data_root, "image", "tmp")
    deadline = time.monotonic() + 5
    while not os.listdir(tmp) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(tmp), "the upload never started"
    s.close()
    deadline = time.monotonic() + 5
    while os.listdir(tmp) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(tmp) == [] and ping(d.sock)
    assert json.loads(request(d.sock, "GET", "/v1.45/images/json")[1]) == []
