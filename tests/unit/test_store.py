import os
import sqlite3
import threading

import pytest

from app.errors import Conflict
from app.events.model import NewEvent
from app.events.store import EventStore
from app.projections import all_projectors


@pytest.fixture
def store(tmp_path):
    s = EventStore(str(tmp_path / "b.db"), all_projectors())
    yield s
    s.close()


def ev(action="start", actor="c1", **attrs):
    return NewEvent("container", action, actor, attrs)


def test_append_assigns_seq_versions_and_increasing_times(store):
    stored = store.append([ev("create", name="a"), ev("start")])
    stored += store.append([ev("create", actor="c2", name="b")])
    assert [e.seq for e in stored] == [1, 2, 3]
    assert [(e.stream, e.version) for e in stored] == [("container:c1", 1), ("container:c1", 2), ("container:c2", 1)]
    times = [e.time_nano for e in stored]
    assert times == sorted(times) and len(set(times)) == 3
    assert store.last_seq == 3
    read = store.read(0)
    assert [(e.seq, e.action, e.actor_id, e.attributes) for e in read] == [
        (1, "create", "c1", {"name": "a"}), (2, "start", "c1", {}), (3, "create", "c2", {"name": "b"})]


def test_attributes_are_strings_and_payload_round_trips(store):
    store.append([NewEvent("container", "die", "c1", {"exitCode": 3}, payload={"pid": 7, "x": [1]})])
    [e] = store.read(0, with_payload=True)
    assert e.attributes == {"exitCode": "3"}
    assert e.payload == {"pid": 7, "x": [1]}


def test_expected_version_conflict_appends_nothing(store):
    store.append([ev("create", name="a")])
    with pytest.raises(Conflict):
        store.append([ev("start"), NewEvent("container", "die", "c1", {}, expected_version=1)])
    assert store.last_seq == 1
    assert store.stream_version("container:c1") == 1
    store.append([NewEvent("container", "start", "c1", {}, expected_version=1)])
    assert store.stream_version("container:c1") == 2


def test_projector_failure_rolls_back_events_and_rows(tmp_path):
    class Boom:
        name, version, tables, schema = "boom", 1, (), ()

        def apply(self, conn, event):
            if event.action == "die":
                raise RuntimeError("projector failed")

    s = EventStore(str(tmp_path / "b.db"), all_projectors() + [Boom()])
    s.append([NewEvent("container", "create", "c1", {"name": "a"})])
    with pytest.raises(RuntimeError):
        s.append([ev("start"), ev("die", exitCode="1")])
    assert [e.action for e in s.read(0)] == ["create"]
    assert s.query("SELECT state FROM containers")[0][0] == "created"
    s.close()


def test_events_table_is_append_only(store):
    store.append([ev("create", name="a")])
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET action='x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events")
    conn.close()


def test_unique_stream_version_enforced_by_schema(store):
    store.append([ev("create", name="a")])
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO events (time_nano, type, action, actor_id, attributes, stream, version, schema)"
                     " VALUES (1, 'container', 'x', 'c1', '{}', 'container:c1', 1, 1)")
    conn.close()


def test_read_bounds_and_narrowing(store):
    for i in range(10):
        store.append([NewEvent("container" if i % 2 else "image", "tag" if i % 2 == 0 else "start", f"a{i}")])
    all_ = store.read(0)
    mid = all_[4].time_nano
    assert [e.seq for e in store.read(4)] == [5, 6, 7, 8, 9, 10]
    assert [e.seq for e in store.read(0, upto_seq=5)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in store.read(3, types=["image"])] == [5, 7, 9]
    assert [e.seq for e in store.read(0, actions=["start"], limit=2)] == [2, 4]
    assert store.first_seq_at_or_after(mid) == 5
    assert store.first_seq_at_or_after(mid - 1) == 5
    assert store.first_seq_at_or_after(mid + 1) == 6
    assert store.first_seq_at_or_after(0) == 1
    assert store.first_seq_at_or_after(all_[-1].time_nano + 1) == 11


def test_wait_for_events_wakes_on_append(store):
    got = []
    t = threading.Thread(target=lambda: got.append(store.wait_for_events(0, 5)))
    t.start()
    store.append([ev("create", name="a")])
    t.join(5)
    assert got == [True]
    assert store.wait_for_events(1, 0.01) is False


def test_reopen_keeps_log_and_projections(tmp_path):
    path = str(tmp_path / "b.db")
    s = EventStore(path, all_projectors())
    s.append([ev("create", name="a"), ev("start")])
    s.close()
    s = EventStore(path, all_projectors())
    assert s.last_seq == 2
    assert s.query("SELECT name, state FROM containers")[0][:] == ("a", "running")
    e = s.append([ev("die", exitCode="0")])[0]
    assert (e.seq, e.version) == (3, 3)
    s.close()


def test_concurrent_appends_from_threads_lose_nothing(store):
    def worker(n):
        for i in range(50):
            store.append([NewEvent("volume", "create", f"v{n}-{i}", {"driver": "local"})])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.last_seq == 400
    assert [e.seq for e in store.read(0, limit=1000)] == list(range(1, 401))
    assert store.query("SELECT COUNT(*) FROM volumes")[0][0] == 400


def test_wal_mode_on_disk(store):
    assert os.path.exists(store.path)
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"


def _query_on_threads(store, n: int, concurrent: bool) -> None:
    started = threading.Barrier(n) if concurrent else None

    def work():
        assert store.query("SELECT 1")[0][0] == 1
        if started is not None:
            started.wait(5)         # all n hold their readers at once

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
        if not concurrent:
            t.join()
    for t in threads:
        t.join()


def test_readers_of_ended_threads_are_reused_not_kept(store):
    # Every stream runs on a short-lived thread of its own; a reader per thread kept for good grew
    # the daemon by two SQLite connections (~300 KiB) per `docker run`.
    store.query("SELECT 1")
    _query_on_threads(store, 100, concurrent=False)
    assert store.open_readers == 2          # this thread's, and the one the 100 threads passed on


def test_idle_readers_are_bounded_and_close_closes_them(tmp_path):
    from app.events import store as store_module
    s = EventStore(str(tmp_path / "b.db"), all_projectors())
    _query_on_threads(s, 40, concurrent=True)
    assert s.open_readers == store_module.IDLE_READERS
    idle = list(s._idle)
    _query_on_threads(s, 40, concurrent=False)
    assert s.open_readers == store_module.IDLE_READERS
    s.close()
    assert s.open_readers == 0
    with pytest.raises(sqlite3.ProgrammingError):
        idle[0].execute("SELECT 1")
