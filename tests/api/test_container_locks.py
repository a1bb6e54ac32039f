"""Per-container locks and the start error boundary, on the fake runtime (tests/fakes.py).

A start holds only its own container's lock, so a start that hangs (in runc create) must not hold up
another container's exit, stop, kill, rm or start; and every way a start can fail ends the same way:
`start-failed`, the host side undone, a classified status with a JSON message.
"""
from __future__ import annotations

import errno
import shutil
import threading
import time

import pytest

from app.runtime.host.overlay import MountError
from tests.api.test_containers_api import (V, actions, create, error, eventually, fake_api, fake_engine,  # noqa: F401
                                           host, image, inspect)


@pytest.fixture
def hanging(fake_api, fake_engine, host, image):
    """A container whose start hangs in runc create, started on a thread; released at the end."""
    release = threading.Event()
    host.script("slow", hang=release)
    cid = create(fake_api, "slow")
    result: dict = {}

    def run():
        try:
            fake_engine.containers.start(cid)
            result["ok"] = True
        except Exception as err:  # noqa: BLE001 - the test reads it
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert eventually(lambda: ("create-hang", cid) in host.calls)
    yield cid, release, thread, result
    release.set()
    thread.join(10)


def test_an_exit_is_recorded_while_another_start_hangs(fake_api, fake_engine, host, image, hanging):
    cid, release, thread, result = hanging
    other = create(fake_api, "other")
    assert fake_api.post(f"{V}/containers/other/start").status_code == 204      # a start goes past it
    t0 = time.monotonic()
    host.exit(other, 3)
    assert eventually(lambda: fake_engine.containers.state_of(other) == "exited", timeout=2)
    assert time.monotonic() - t0 < 1.5                                   # the watcher was not held up
    assert actions(fake_engine, other)[-1] == "die"
    assert fake_api.post(f"{V}/containers/other/wait").get_json()["StatusCode"] == 3
    assert thread.is_alive() and fake_engine.containers.state_of(cid) == "created"   # still hanging
    release.set()
    thread.join(5)
    assert result == {"ok": True} and fake_engine.containers.state_of(cid) == "running"


def test_stop_kill_and_rm_of_others_go_on_while_a_start_hangs(fake_api, fake_engine, host, image, hanging):
    cid, release, thread, result = hanging
    a, b = create(fake_api, "aa"), create(fake_api, "bb")
    for name in ("aa", "bb"):
        assert fake_api.post(f"{V}/containers/{name}/start").status_code == 204
    t0 = time.monotonic()
    assert fake_api.post(f"{V}/containers/aa/stop?t=1").status_code == 204
    assert fake_api.post(f"{V}/containers/bb/kill").status_code == 204
    assert fake_api.post(f"{V}/containers/bb/start").status_code == 204
    assert fake_api.post(f"{V}/containers/bb/pause").status_code == 204
    assert fake_api.post(f"{V}/containers/bb/unpause").status_code == 204
    assert fake_api.delete(f"{V}/containers/bb?force=1").status_code == 204
    assert fake_api.delete(f"{V}/containers/aa").status_code == 204
    assert time.monotonic() - t0 < 3
    assert thread.is_alive()


def test_rm_f_of_a_hanging_start_does_not_deadlock_on_its_lock(fake_api, fake_engine, host, image, hanging):
    cid, release, thread, result = hanging
    r = fake_api.delete(f"{V}/containers/slow?force=1")   # cancels the start, then takes its lock
    assert r.status_code == 204
    thread.join(5)
    assert not thread.is_alive() and "removed while it was starting" in str(result["error"])
    assert fake_api.get(f"{V}/containers/{cid}/json").status_code == 404
    assert not host.runc_knows(cid) and fake_engine.containers.bundle(cid) not in host.mounted


def test_lock_registry_keeps_nothing_once_idle(fake_api, fake_engine, host, image):
    c = fake_engine.containers
    for i in range(5):
        create(fake_api, f"n{i}", HostConfig={"AutoRemove": True}, Cmd=["true"])
        assert fake_api.post(f"{V}/containers/n{i}/start").status_code == 204
    cid = create(fake_api, "kept")
    assert fake_api.post(f"{V}/containers/kept/start").status_code == 204
    assert fake_api.post(f"{V}/containers/kept/stop?t=0").status_code == 204
    assert eventually(lambda: not any(fake_engine.containers.get(x) for x in c._locks) and
               all(fake_api.get(f"{V}/containers/n{i}/json").status_code == 404 for i in range(5)))
    assert fake_api.delete(f"{V}/containers/{cid}").status_code == 204
    assert eventually(lambda: c._locks == {})                  # entries go with their last user


def test_waiters_of_two_containers_wake_on_their_own_exit(fake_api, fake_engine, host, image):
    a, b = create(fake_api, "wa"), create(fake_api, "wb")
    for name in ("wa", "wb"):
        assert fake_api.post(f"{V}/containers/{name}/start").status_code == 204
    got: dict = {}
    threads = [threading.Thread(target=lambda cid=cid: got.__setitem__(cid, fake_engine.containers.wait_exit(cid, 5)))
               for cid in (a, b)]
    for t in threads:
        t.start()
    host.exit(b, 0)
    threads[1].join(2)
    assert got.get(b) is True and threads[0].is_alive()
    host.exit(a, 0)
    threads[0].join(2)
    assert got.get(a) is True


# ------------------------------------------------------------------------------------------ error boundary

def _assert_failed_cleanly(fake_api, fake_engine, host, cid, r, status, text):
    assert r.status_code == status, r.data
    assert r.is_json and text in error(r)
    assert actions(fake_engine, cid)[-1] == "start-failed"
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "created" and state["Error"] == error(r)
    assert fake_engine.containers.bundle(cid) not in host.mounted and not host.runc_knows(cid)
    assert fake_engine.containers._locks == {}
    assert fake_api.get("/_ping").status_code == 200


def test_a_mount_failure_is_a_clean_start_failure(fake_api, fake_engine, host, image):
    cid = create(fake_api, "mnt")
    host.fail["mount"] = MountError(errno.EINVAL, "error mounting overlay on /x/rootfs: Invalid argument")
    r = fake_api.post(f"{V}/containers/mnt/start")
    _assert_failed_cleanly(fake_api, fake_engine, host, cid, r, 500, "error mounting overlay")
    assert fake_api.post(f"{V}/containers/mnt/start").status_code == 204      # and works once it can


def test_a_vanished_layer_dir_is_a_clean_start_failure(fake_api, fake_engine, host, image):
    cid = create(fake_api, "vanished")
    images = fake_engine.images
    layers = images.layer_dirs(images.resolve("busybox")[0])
    shutil.rmtree(layers[0])
    r = fake_api.post(f"{V}/containers/vanished/start")       # the fake mount's copy raises FileNotFoundError
    _assert_failed_cleanly(fake_api, fake_engine, host, cid, r, 500, f"failed to start container {cid[:12]}: ")
    assert layers[0] in error(r) and "No such file or directory" in error(r)


def test_enospc_after_the_mount_is_undone(fake_api, fake_engine, host, image):
    cid = create(fake_api, "full")
    host.fail["create"] = OSError(errno.ENOSPC, "No space left on device")
    r = fake_api.post(f"{V}/containers/full/start")
    _assert_failed_cleanly(fake_api, fake_engine, host, cid, r, 500, "No space left on device")
    assert "file system is full" in error(r)


def test_an_unexpected_exception_is_a_clean_start_failure(fake_api, fake_engine, host, image):
    cid = create(fake_api, "odd")
    host.fail["create"] = ValueError("something odd")
    r = fake_api.post(f"{V}/containers/odd/start")
    _assert_failed_cleanly(fake_api, fake_engine, host, cid, r, 500, "ValueError: something odd")


def test_a_failed_start_releases_a_waiting_attach(fake_api, fake_engine, host, image):
    cid = create(fake_api, "att")
    waiter = fake_engine.containers.reserve_attach(cid)
    host.fail["mount"] = OSError(errno.EIO, "Input/output error")
    r = fake_api.post(f"{V}/containers/att/start")
    assert r.status_code == 500 and "Input/output error" in error(r)
    assert waiter.ready.is_set() and waiter.conn is None
    assert cid not in fake_engine.containers._attach_waiters
