"""Restart policies on the fake runtime (app/runtime/restart/service.py): decisions at each exit, the
`restart-scheduled` bookkeeping, user stops between restarts, update, boot re-arming."""
from __future__ import annotations

import time

import pytest

from tests.api.test_containers_api import (V, _engine, create, fake_api, fake_engine, host, image,  # noqa: F401
                                           inspect, run, wait)


def until(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def actions(engine, cid):
    return [e.action for e in engine.store.read(limit=100000) if e.actor_id == cid]


def policy(name, count=0):
    return {"HostConfig": {"RestartPolicy": {"Name": name, "MaximumRetryCount": count}}}


def test_on_failure_3_ends_exited_with_restart_count_3(fake_api, fake_engine, image):
    cid = run(fake_api, "of3", Cmd=["exit", "1"], **policy("on-failure", 3))
    until(lambda: inspect(fake_api, cid)["RestartCount"] == 3 and inspect(fake_api, cid)["State"]["Status"] == "exited")
    time.sleep(1.0)                          # a 4th would come 0.8 s after the 3rd
    info = inspect(fake_api, cid)
    assert info["RestartCount"] == 3 and info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 1
    acts = [a for a in actions(fake_engine, cid) if a in ("start", "die", "restart-scheduled", "restart")]
    assert acts == ["start", "die", "restart-scheduled"] * 3 + ["start", "die"]
    delays = [e.payload["delay"] for e in fake_engine.store.read(limit=100000, with_payload=True)
              if e.actor_id == cid and e.action == "restart-scheduled"]
    assert delays == [0.1, 0.2, 0.4]
    assert "Berth" not in info


def test_restart_scheduled_is_not_streamed(fake_api, fake_engine, image):
    cid = run(fake_api, "ns", Cmd=["exit", "1"], **policy("on-failure", 1))
    until(lambda: inspect(fake_api, cid)["RestartCount"] == 1 and inspect(fake_api, cid)["State"]["Status"] == "exited")
    r = fake_api.get(f"{V}/events?since=0&until={int(time.time()) + 1}&filters=" + '{"container":["ns"]}')
    streamed = [line for line in r.data.decode().splitlines() if line]
    assert streamed and not any("restart-scheduled" in line for line in streamed)


def test_no_and_on_failure_with_zero_exit_never_restart(fake_api, fake_engine, image):
    a = run(fake_api, "p-no", Cmd=["exit", "3"], **policy("no"))
    b = run(fake_api, "p-of", Cmd=["exit", "0"], **policy("on-failure"))
    for cid in (a, b):
        wait(fake_api, cid)
    time.sleep(0.5)
    for cid in (a, b):
        assert inspect(fake_api, cid)["RestartCount"] == 0 and "restart-scheduled" not in actions(fake_engine, cid)


def test_a_user_stop_or_kill_never_restarts(fake_api, fake_engine, host, image):
    a = run(fake_api, "k-always", Cmd=["sleep", "300"], **policy("always"))
    b = run(fake_api, "s-unless", Cmd=["sleep", "300"], **policy("unless-stopped"))
    assert fake_api.post(f"{V}/containers/{a}/kill").status_code == 204
    assert fake_api.post(f"{V}/containers/{b}/stop").status_code == 204
    time.sleep(0.5)
    for cid in (a, b):
        assert inspect(fake_api, cid)["State"]["Status"] == "exited"
        assert "restart-scheduled" not in actions(fake_engine, cid)
    # a kill with another signal that makes the process exit is no user stop: moby restarts it
    c = run(fake_api, "hup", Cmd=["sleep", "300"], **policy("always"))
    host.script("hup", traps={"HUP": 129})
    assert fake_api.post(f"{V}/containers/{c}/kill?signal=HUP").status_code == 204
    until(lambda: inspect(fake_api, c)["RestartCount"] == 1)


def test_stop_kill_rm_between_restarts(fake_api, fake_engine, host, image):
    fake_engine.restarts.min_delay = 30.0        # keep it pending
    cid = run(fake_api, "pend", Cmd=["exit", "2"], **policy("always"))
    until(lambda: inspect(fake_api, cid)["State"]["Status"] == "restarting")
    info = inspect(fake_api, cid)
    assert info["State"]["Restarting"] and info["State"]["Running"] and info["RestartCount"] == 1
    assert info["Berth"]["NextRestart"].endswith("Z")
    ps = fake_api.get(f"{V}/containers/json?all=1").get_json()
    assert [c["Status"] for c in ps if c["Id"] == cid][0].startswith("Restarting (2) ")
    r = fake_api.delete(f"{V}/containers/{cid}")
    assert r.status_code == 409 and "container is restarting: stop the container" in r.get_json()["message"]
    assert fake_api.post(f"{V}/containers/{cid}/start").status_code == 304
    assert fake_api.post(f"{V}/containers/{cid}/stop").status_code == 204
    info = inspect(fake_api, cid)
    assert info["State"]["Status"] == "exited" and "Berth" not in info
    assert f"restart:{cid}" not in fake_engine.scheduler.job_ids()
    assert fake_api.post(f"{V}/containers/{cid}/stop").status_code == 304
    # kill and rm -f of a pending one
    k = run(fake_api, "pend-k", Cmd=["exit", "2"], **policy("always"))
    until(lambda: inspect(fake_api, k)["State"]["Status"] == "restarting")
    assert fake_api.post(f"{V}/containers/{k}/kill").status_code == 204
    assert inspect(fake_api, k)["State"]["Status"] == "exited"
    r = run(fake_api, "pend-r", Cmd=["exit", "2"], **policy("always"))
    until(lambda: inspect(fake_api, r)["State"]["Status"] == "restarting")
    assert fake_api.delete(f"{V}/containers/{r}?force=1").status_code == 204
    assert f"restart:{r}" not in fake_engine.scheduler.job_ids()


def test_user_start_resets_restart_count(fake_api, fake_engine, image):
    cid = run(fake_api, "reset", Cmd=["exit", "1"], **policy("on-failure", 1))
    until(lambda: inspect(fake_api, cid)["RestartCount"] == 1 and inspect(fake_api, cid)["State"]["Status"] == "exited")
    assert fake_api.post(f"{V}/containers/{cid}/start").status_code == 204
    until(lambda: inspect(fake_api, cid)["RestartCount"] == 1 and
          actions(fake_engine, cid).count("start") == 4)


def test_rm_with_a_policy_is_refused_and_update_applies(fake_api, fake_engine, image):
    r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", "HostConfig": {
        "AutoRemove": True, "RestartPolicy": {"Name": "always"}}})
    assert r.status_code == 400 and r.get_json()["message"] == "can't create 'AutoRemove' container with restart policy"
    r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", **policy("always", 3)})
    assert r.status_code == 400 and "can only be used with 'on-failure'" in r.get_json()["message"]
    cid = run(fake_api, "upd", Cmd=["sleep", "300"])
    r = fake_api.post(f"{V}/containers/{cid}/update", json={"RestartPolicy": {"Name": "on-failure",
                                                                            "MaximumRetryCount": 1}})
    assert r.status_code == 200, r.get_json()
    assert inspect(fake_api, cid)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    fake_engine.containers.finish(cid, code=7)            # it exits on its own
    until(lambda: inspect(fake_api, cid)["RestartCount"] == 1)
    rm = create(fake_api, "rmc", HostConfig={"AutoRemove": True})
    r = fake_api.post(f"{V}/containers/{rm}/update", json={"RestartPolicy": {"Name": "always"}})
    assert r.status_code == 409 and "AutoRemove is enabled" in r.get_json()["message"]


def test_pending_restart_and_always_come_back_after_a_daemon_restart(tmp_path, host):
    from app import create_app
    root = str(tmp_path / "root2")
    eng = _engine(root, host)
    api = create_app(eng.config, eng).test_client()
    from tests.api.test_containers_api import _image_tar
    from urllib.parse import quote
    changes = "&".join("changes=" + quote(c) for c in ('CMD ["sleep", "300"]',))
    assert api.post(f"{V}/images/create?fromSrc=-&repo=busybox:latest&{changes}", data=_image_tar()).status_code == 200
    eng.restarts.min_delay = 2.0
    pend = run(api, "pend", Cmd=["exit", "1"], **policy("on-failure", 5))
    until(lambda: inspect(api, pend)["State"]["Status"] == "restarting")
    due = eng.restarts.next_restart(eng.containers.get(pend))
    stopped = run(api, "us", Cmd=["sleep", "300"], **policy("unless-stopped"))
    assert api.post(f"{V}/containers/{stopped}/stop").status_code == 204
    always = run(api, "al", Cmd=["sleep", "300"], **policy("always"))
    assert api.post(f"{V}/containers/{always}/stop").status_code == 204
    eng.close()
    eng = _engine(root, host)
    try:
        api = create_app(eng.config, eng).test_client()
        assert eng.scheduler.next_run(f"restart:{pend}") == pytest.approx(due, abs=0.01)
        until(lambda: inspect(api, always)["State"]["Status"] == "running")
        until(lambda: inspect(api, pend)["RestartCount"] == 2, timeout=15)
        assert time.time() >= due
        assert inspect(api, stopped)["State"]["Status"] == "exited"
    finally:
        for cid in (pend, stopped, always):
            api.delete(f"{V}/containers/{cid}?force=1")
        eng.close()


def test_wait_not_running_waits_through_a_restart(fake_api, fake_engine, image):
    fake_engine.restarts.min_delay = 30.0
    cid = run(fake_api, "waiter", Cmd=["exit", "4"], **policy("always"))
    until(lambda: inspect(fake_api, cid)["State"]["Status"] == "restarting")
    import threading
    got = {}
    t = threading.Thread(target=lambda: got.update(wait(fake_api, cid)))
    t.start()
    time.sleep(0.3)
    assert t.is_alive()                       # Running is true while restarting: not-running waits
    assert fake_api.post(f"{V}/containers/{cid}/stop").status_code == 204
    t.join(5)
    assert got.get("StatusCode") == 4


def test_docker_restart_of_a_restarting_container(fake_api, fake_engine, host, image):
    fake_engine.restarts.min_delay = 30.0
    cid = run(fake_api, "rr", Cmd=["sleep", "300"], **policy("always"))
    fake_engine.containers.finish(cid, code=1)     # it exits on its own: a restart is pending
    assert inspect(fake_api, cid)["State"]["Status"] == "restarting"
    assert fake_api.post(f"{V}/containers/{cid}/restart").status_code == 204
    info = inspect(fake_api, cid)
    assert info["State"]["Status"] == "running" and info["RestartCount"] == 0   # a user's start resets it
    assert f"restart:{cid}" not in fake_engine.scheduler.job_ids()
