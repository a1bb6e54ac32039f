"""Projections are functions of the log: replaying it must give exactly the incremental rows."""
import json
import random
import sqlite3

import pytest

from app.errors import Conflict
from app.events.model import NewEvent
from app.events.store import EventStore
from app.projections import all_projectors, rebuild, snapshot

CONTAINER_ACTIONS = ["create", "start", "die", "kill", "stop", "pause", "unpause", "restart", "rename",
                     "oom", "destroy", "attach", "exec_create"]
IMAGE_ACTIONS = ["import", "load", "pull", "tag", "untag", "delete", "save"]
VOLUME_ACTIONS = ["create", "mount", "unmount", "destroy"]


def random_event(rng: random.Random, counter: list) -> NewEvent:
    counter[0] += 1
    n = counter[0]
    kind = rng.choice(["container", "container", "image", "volume", "exec"])
    if kind == "exec":
        return random_exec_event(rng, n)
    if kind == "container":
        cid = f"c{rng.randrange(8):02d}" + "0" * 62
        action = rng.choice(CONTAINER_ACTIONS)
        attrs = {"image": rng.choice(["busybox", "alpine:3"]), "name": f"name-{cid[:3]}"}
        payload = None
        if action == "create":
            payload = {"config": {"Cmd": ["sh", "-c", str(n)]}, "labels": {"k": str(rng.randrange(3))},
                       "image_id": "sha256:" + "ab" * 32, "host_config": {"NetworkMode": "default"}}
        elif action == "start":
            payload = {"pid": rng.randrange(1, 50000)}
        elif action == "die":
            attrs["exitCode"] = str(rng.choice([0, 1, 137, 255]))
        elif action == "rename":
            attrs["name"] = f"name-{cid[:3]}-{n}"
            attrs["oldName"] = f"name-{cid[:3]}"
        return NewEvent("container", action, cid, attrs, payload=payload)
    if kind == "image":
        iid = "sha256:" + f"{rng.randrange(5):02d}" * 32
        action = rng.choice(IMAGE_ACTIONS)
        attrs = {"name": rng.choice(["busybox:latest", "a/b:1", "x:y"])}
        payload = None
        if action in ("import", "load", "pull"):
            payload = {"size": rng.randrange(10**6), "created_nano": n, "config": {"Env": [f"N={n}"]},
                       "labels": {}}
        return NewEvent("image", action, iid, attrs, payload=payload)
    vid = f"vol{rng.randrange(6)}"
    action = rng.choice(VOLUME_ACTIONS)
    attrs = {"driver": "local"}
    if action in ("mount", "unmount"):
        attrs["container"] = f"c{rng.randrange(8):02d}"
    payload = {"labels": {"n": str(n)}, "anonymous": rng.random() < 0.5} if action == "create" else None
    return NewEvent("volume", action, vid, attrs, payload=payload)


EXEC_ACTIONS = ["exec_create", "exec_start", "exec_die", "exec-failed", "exec_detach"]


def random_exec_event(rng: random.Random, n: int) -> NewEvent:
    """An exec's events: Docker's action carries the command (`exec_create: sh -c 1`), the stream is
    the exec's own; some land on a container that is gone or never was."""
    cid = f"c{rng.randrange(8):02d}" + "0" * 62
    eid = f"e{rng.randrange(12):02d}" + "0" * 61
    action = rng.choice(EXEC_ACTIONS)
    attrs = {"image": "busybox", "name": f"name-{cid[:3]}", "execID": eid}
    payload = None
    if action == "exec_create":
        payload = {"config": {"entrypoint": "sh", "arguments": ["-c", str(n)], "tty": rng.random() < 0.5}}
        action = f"exec_create: sh -c {n}"
    elif action == "exec_start":
        payload = {"pid": rng.randrange(1, 50000)}
        action = f"exec_start: sh -c {n}"
    elif action == "exec_die":
        attrs["exitCode"] = str(rng.choice([0, 1, 126, 127, 137]))
    elif action == "exec-failed":
        payload = {"exit_code": rng.choice([126, 127]), "error": f"no {n}"}
    stream = f"container-audit:{cid}" if action == "exec_detach" else f"exec:{eid}"
    return NewEvent("container", action, cid, attrs, payload=payload, stream=stream)


def test_exec_rows_follow_their_stream_and_go_with_the_container(tmp_path):
    store = EventStore(str(tmp_path / "b.db"), all_projectors())
    cid, eid = "f" * 64, "e" * 64
    store.append([NewEvent("container", "create", cid, {"name": "web", "image": "busybox"}, payload={})])
    store.append([NewEvent("container", "exec_create: sh -c exit 3 ", cid, {"execID": eid}, stream=f"exec:{eid}",
                           payload={"config": {"entrypoint": "sh"}})])
    from app.projections import execs
    assert execs.get_exec(store, eid).state == "created" and execs.exec_ids(store, cid) == [eid]
    store.append([NewEvent("container", "exec_start: sh -c exit 3 ", cid, {"execID": eid}, stream=f"exec:{eid}",
                           payload={"pid": 7})])
    row = execs.get_exec(store, eid)
    assert (row.state, row.pid, row.exit_code, row.version) == ("running", 7, None, 2)
    store.append([NewEvent("container", "exec_die", cid, {"execID": eid, "exitCode": "3"}, stream=f"exec:{eid}")])
    row = execs.get_exec(store, eid)
    assert (row.state, row.exit_code) == ("exited", 3) and execs.exec_ids(store, cid) == []
    store.append([NewEvent("container", "destroy", cid, {"name": "web"})])
    assert execs.get_exec(store, eid) is None
    store.close()


def test_exec_actions_are_docker_visible_by_their_first_word():
    from app.events.model import Event
    ev = Event(1, 1, "container", "exec_start: sh -c ls", "c", {}, "exec:e", 2)
    assert ev.is_docker_visible
    assert not Event(1, 1, "container", "exec-failed", "c", {}, "exec:e", 3).is_docker_visible


@pytest.mark.parametrize("seed", range(25))
def test_replay_equals_incremental(tmp_path, seed):
    rng = random.Random(seed)
    store = EventStore(str(tmp_path / "b.db"), all_projectors())
    counter = [0]
    for _ in range(rng.randrange(50, 400)):
        batch = [random_event(rng, counter) for _ in range(rng.choice([1, 1, 1, 2, 5]))]
        try:
            store.append(batch)
        except Conflict:
            pass        # a create whose ID or name is taken: refused whole, nothing of the batch is kept
    incremental = snapshot(store.reader(), store.projectors)
    assert any(incremental.values()), "a random log should leave some rows"
    replayed_count = rebuild(store)
    assert replayed_count == store.last_seq
    assert snapshot(store.reader(), store.projectors) == incremental
    store.close()


def test_projection_rows_follow_container_lifecycle(tmp_path):
    store = EventStore(str(tmp_path / "b.db"), all_projectors())
    cid = "f" * 64
    store.append([NewEvent("container", "create", cid, {"name": "web", "image": "busybox"},
                           payload={"config": {"Cmd": ["true"]}, "labels": {"a": "b"}})])
    store.append([NewEvent("container", "start", cid, {"name": "web"}, payload={"pid": 42})])
    row = store.query("SELECT name, state, pid, labels FROM containers")[0]
    assert tuple(row) == ("web", "running", 42, json.dumps({"a": "b"}))
    store.append([NewEvent("container", "die", cid, {"exitCode": "3"})])
    assert tuple(store.query("SELECT state, exit_code, pid FROM containers")[0]) == ("exited", 3, 0)
    store.append([NewEvent("container", "rename", cid, {"name": "api", "oldName": "web"})])
    assert store.query("SELECT name FROM containers")[0][0] == "api"
    store.append([NewEvent("container", "destroy", cid, {"name": "api"})])
    assert store.query("SELECT COUNT(*) FROM containers")[0][0] == 0
    store.close()


def test_image_refs_move_between_images(tmp_path):
    store = EventStore(str(tmp_path / "b.db"), all_projectors())
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    store.append([NewEvent("image", "import", a, {}, payload={"size": 5}),
                  NewEvent("image", "tag", a, {"name": "busybox:latest"})])
    store.append([NewEvent("image", "load", b, {}, payload={"size": 7}),
                  NewEvent("image", "tag", b, {"name": "busybox:latest"})])
    assert [tuple(r) for r in store.query("SELECT ref, image_id FROM image_refs")] == [("busybox:latest", b)]
    store.append([NewEvent("image", "delete", b, {})])
    assert store.query("SELECT COUNT(*) FROM image_refs")[0][0] == 0
    assert [r[0] for r in store.query("SELECT id FROM images")] == [a]
    store.close()


def test_changed_projector_version_triggers_rebuild_on_open(tmp_path):
    path = str(tmp_path / "b.db")
    store = EventStore(path, all_projectors())
    store.append([NewEvent("volume", "create", "v1", {"driver": "local"})])
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM volumes")          # simulate a stale read model …
    conn.execute("UPDATE projection_meta SET version = 0 WHERE name = 'volumes'")  # … of an older schema
    conn.commit()
    conn.close()
    store = EventStore(path, all_projectors())
    assert [r[0] for r in store.query("SELECT name FROM volumes")] == ["v1"]
    store.close()


def test_a_create_with_a_taken_name_fails_and_keeps_the_other_row(tmp_path):
    """The projector never replaces a row: INSERT OR REPLACE once deleted the other container."""
    store = EventStore(str(tmp_path / "b.db"), all_projectors())
    store.append([NewEvent("container", "create", "a" * 64, {"name": "web", "image": "busybox"}, payload={})])
    seq = store.last_seq
    with pytest.raises(Conflict, match="UNIQUE constraint failed: containers.name"):
        store.append([NewEvent("container", "create", "b" * 64, {"name": "web", "image": "busybox"}, payload={})])
    assert [tuple(r) for r in store.query("SELECT id, name FROM containers")] == [("a" * 64, "web")]
    assert store.last_seq == seq and store.query("SELECT COUNT(*) FROM events")[0][0] == seq
    store.close()


def test_a_guard_refuses_an_append_inside_its_transaction(tmp_path):
    store = EventStore(str(tmp_path / "b.db"), all_projectors())

    def guard(conn):
        assert conn.in_transaction              # BEGIN IMMEDIATE: no writer can come between
        raise Conflict("no")
    with pytest.raises(Conflict, match="no"):
        store.append([NewEvent("daemon", "reload", "x")], guard=guard)
    assert store.last_seq == 0 and store.query("SELECT COUNT(*) FROM events")[0][0] == 0
    store.close()


def test_expected_version_is_checked_per_stream(tmp_path):
    from app.errors import ConcurrentChange
    store = EventStore(str(tmp_path / "b.db"), all_projectors())
    store.append([NewEvent("container", "create", "a" * 64, {"name": "web"}, payload={}, expected_version=0)])
    store.append([NewEvent("container", "attach", "a" * 64, {"name": "web"}, stream="container-audit:" + "a" * 64)])
    row = store.query("SELECT version FROM containers")[0][0]
    assert row == 1     # the audit stream does not move the container's version
    with pytest.raises(ConcurrentChange):
        store.append([NewEvent("container", "start", "a" * 64, {"name": "web"}, payload={"pid": 1},
                               expected_version=0)])
    store.append([NewEvent("container", "start", "a" * 64, {"name": "web"}, payload={"pid": 1}, expected_version=1)])
    assert store.query("SELECT state, version FROM containers")[0][:] == ("running", 2)
    store.close()
