"""Invariants that hold in the store, not in a lock of the daemon: a container name is unique, and an
image in use by a container is not deleted without force — however many requests race for them.

Each race is run against a real daemon by many client threads released at once."""
from __future__ import annotations

import os
import sqlite3
import threading
import time

import docker
import pytest


def _race(n: int, fn) -> list:
    """Run fn(i) in n threads released together; the results (or exceptions) by index."""
    gate = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        gate.wait()
        try:
            results[i] = fn(i)
        except Exception as err:  # noqa: BLE001 - the outcome is the result
            results[i] = err
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _api(daemon):
    return docker.APIClient(base_url=daemon.host, version="1.45", timeout=120)


def test_twenty_concurrent_creates_with_one_name_make_one_container(daemon, busybox):
    clients = [_api(daemon) for _ in range(20)]
    results = _race(20, lambda i: clients[i].create_container("busybox", ["true"], name="only")["Id"])
    made = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, docker.errors.APIError)]
    assert len(made) == 1 and len(refused) == 19, results
    assert all(r.status_code == 409 and 'The container name "/only" is already in use' in r.explanation
               for r in refused)
    listed = _api(daemon).containers(all=True, filters={"name": "only"})
    assert [c["Id"] for c in listed] == made
    with sqlite3.connect(daemon.data_root + "/berth.db") as db:
        assert db.execute("SELECT COUNT(*) FROM containers WHERE name='only'").fetchone()[0] == 1
        creates = db.execute("SELECT COUNT(*) FROM events WHERE type='container' AND action='create'").fetchone()[0]
    assert creates == 1     # the refused ones left no event


def test_concurrent_renames_to_one_name_let_one_win(daemon, busybox):
    api = _api(daemon)
    ids = [api.create_container("busybox", ["true"], name=f"r{i}")["Id"] for i in range(8)]
    clients = [_api(daemon) for _ in ids]
    results = _race(len(ids), lambda i: clients[i].rename(ids[i], "winner"))
    assert sum(r is None for r in results) == 1, results
    assert all(isinstance(r, docker.errors.APIError) and r.status_code == 409 for r in results if r is not None)
    assert len(api.containers(all=True, filters={"name": "^/winner$"})) == 1


@pytest.mark.parametrize("round_", range(3))
def test_create_racing_rmi_never_leaves_a_container_without_its_image(daemon, busybox_tar, round_):
    """Creates of containers from an image race a plain `rmi` of it: the rmi is refused once a
    container uses the image, and a create that comes after the delete fails. Never both a deleted
    image and a container made from it."""
    api = _api(daemon)
    image_id = daemon.cli("import", busybox_tar, f"racer:{round_}", check=True).stdout.strip()
    clients = [_api(daemon) for _ in range(9)]

    def act(i):
        if i == 0:
            return ("rmi", clients[0].remove_image(f"racer:{round_}"))
        return ("create", clients[i].create_container(image_id, ["true"])["Id"])
    results = _race(9, act)
    made = [r[1] for r in results if isinstance(r, tuple) and r[0] == "create"]
    image_gone = not any(i["Id"] == image_id for i in api.images(all=True))
    for cid in made:
        assert api.inspect_container(cid)["Image"] == image_id
    if image_gone:
        assert made == [], "a container exists whose image was deleted"
    for r in results:
        if isinstance(r, Exception):
            assert isinstance(r, docker.errors.APIError) and r.status_code in (404, 409), r
    for cid in made:
        api.remove_container(cid, force=True)


def test_a_create_that_resolved_its_image_before_an_rmi_fails_after_it(make_daemon, busybox_tar):
    """The race made certain: the create pauses between resolving its image and appending (a fault
    point), the rmi deletes the image in that pause, and the create's append must then refuse."""
    env = {k: v for k, v in os.environ.items() if k != "BERTH_FAULT"}
    env["BERTH_FAULT"] = "create:before-append=sleep:1.5"
    d = make_daemon().start(env=env)
    image_id = d.cli("import", busybox_tar, "doomed:1", check=True).stdout.strip()
    api, other = _api(d), _api(d)
    outcome: list = []

    def create():
        try:
            outcome.append(api.create_container(image_id, ["true"])["Id"])
        except docker.errors.APIError as err:
            outcome.append(err)
    t = threading.Thread(target=create)
    t.start()
    time.sleep(0.5)                         # the create has resolved the image and is paused
    other.remove_image("doomed:1")          # nothing uses it yet: deleted
    t.join(30)
    assert not any(i["Id"] == image_id for i in api.images(all=True))
    assert isinstance(outcome[0], docker.errors.APIError) and outcome[0].status_code == 404, outcome
    assert "No such image" in outcome[0].explanation
    assert api.containers(all=True) == []
