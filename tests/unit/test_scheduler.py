"""The daemon's scheduler (app/runtime/restart/scheduler.py): one-shot and interval jobs, replace by id,
late jobs still run, a failing job does not stop the others."""
import threading
import time

import pytest

from app.runtime.restart.scheduler import Scheduler


@pytest.fixture
def sched():
    s = Scheduler(workers=2)
    s.start()
    yield s
    s.close()


def test_at_runs_once_at_its_time(sched):
    fired = []
    due = time.time() + 0.2
    sched.at("restart:a", due, lambda: fired.append(time.time()))
    assert sched.next_run("restart:a") == pytest.approx(due, abs=0.01)
    time.sleep(0.6)
    assert len(fired) == 1 and fired[0] >= due - 0.01
    assert sched.next_run("restart:a") is None


def test_a_past_due_time_runs_now(sched):
    done = threading.Event()
    sched.at("restart:late", time.time() - 3600, done.set)
    assert done.wait(2), "a job due an hour ago was skipped as a misfire"


def test_same_id_replaces_the_pending_job(sched):
    fired = []
    sched.at("restart:b", time.time() + 0.3, lambda: fired.append("old"))
    sched.at("restart:b", time.time() + 0.3, lambda: fired.append("new"))
    time.sleep(0.7)
    assert fired == ["new"]


def test_cancel(sched):
    fired = []
    sched.at("restart:c", time.time() + 0.3, lambda: fired.append(1))
    assert sched.cancel("restart:c") is True
    assert sched.cancel("restart:c") is False
    time.sleep(0.5)
    assert fired == []


def test_every_repeats_and_a_raising_job_keeps_running(sched):
    calls = []

    def probe():
        calls.append(time.time())
        raise RuntimeError("probe failed")

    sched.every("health:d", 0.1, probe, first=time.time() + 0.05)
    time.sleep(0.65)
    sched.cancel("health:d")
    assert len(calls) >= 4, calls
