"""Restart policies with real containers (runc + conmon), through our CLI, docker-py and the docker CLI:
the decisions, the backoff in the event times, user stops, daemon restarts and a kill -9 of the daemon
with a restart pending (app/runtime/restart/service.py)."""
import json
import time

import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli, remove_all_containers, until


def _inspect(daemon, ref) -> dict:
    return json.loads(daemon.cli("inspect", ref, check=True).stdout)[0]


def _state(daemon, ref):
    info = _inspect(daemon, ref)
    return info["State"]["Status"], info["RestartCount"]


def _events(daemon, cid, since=0):
    r = daemon.cli("events", "--since", str(since), "--until", f"{time.time():.6f}", "--filter", f"container={cid}",
                   "--format", "{{json .}}", check=True)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_on_failure_3_ends_exited_after_3_restarts(daemon, busybox):
    cid = daemon.cli("run", "-d", "--restart", "on-failure:3", "busybox", "sh", "-c", "exit 1", check=True).stdout.strip()
    assert until(lambda: _state(daemon, cid) == ("exited", 3), timeout=30), _state(daemon, cid)
    time.sleep(2.0)                     # a 4th restart would have come 0.8 s after the 3rd exit
    assert _state(daemon, cid) == ("exited", 3)
    info = _inspect(daemon, cid)
    assert info["State"]["ExitCode"] == 1 and info["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure", "MaximumRetryCount": 3}
    actions = [e["Action"] for e in _events(daemon, cid) if e["Action"] in ("start", "die", "restart")]
    assert actions == ["start", "die"] * 4          # moby: die then start; `restart` is docker restart's


def test_no_never_restarts(daemon, busybox):
    cid = daemon.cli("run", "-d", "--restart", "no", "busybox", "sh", "-c", "exit 1", check=True).stdout.strip()
    assert daemon.cli("wait", cid, check=True).stdout.strip() == "1"
    time.sleep(1.0)
    assert _state(daemon, cid) == ("exited", 0)


def test_always_restarts_with_the_backoff_in_the_event_times(daemon, busybox, docker_client):
    c = docker_client.containers.run("busybox", ["sh", "-c", "sleep 1; exit 0"], detach=True,
                                     restart_policy={"Name": "always"})
    try:
        def starts():
            return [e for e in _events(daemon, c.id) if e["Action"] in ("start", "die")]
        assert until(lambda: sum(e["Action"] == "start" for e in starts()) >= 4, timeout=40)
        evs = starts()
        gaps = [(b["timeNano"] - a["timeNano"]) / 1e9 for a, b in zip(evs, evs[1:])
                if a["Action"] == "die" and b["Action"] == "start"]
        assert len(gaps) >= 3
        for gap, delay in zip(gaps, (0.1, 0.2, 0.4)):   # each restart waited at least its policy delay
            assert gap >= delay, gaps
        c.reload()
        assert c.attrs["RestartCount"] >= 3
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    finally:
        c.remove(force=True)
    # update --restart through docker-py applies to the next exit
    c = docker_client.containers.run("busybox", ["sh", "-c", "sleep 1; exit 3"], detach=True)
    try:
        c.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
        assert until(lambda: _state(daemon, c.id) == ("exited", 1), timeout=30)
    finally:
        c.remove(force=True)


@needs_docker_cli
def test_docker_cli_restarting_status_stop_and_rm_conflict(make_daemon, busybox_tar):
    d = make_daemon().start("--restart-min-delay", "30")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        r = docker_cli(d, "run", "-d", "--restart", "always", "busybox", "sh", "-c", "exit 2")
        assert r.returncode == 0, r.stderr
        cid = r.stdout.strip()
        assert until(lambda: _state(d, cid) == ("restarting", 1), timeout=20)
        ps = docker_cli(d, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}").stdout
        assert f"{cid} Restarting (2) " in ps
        info = _inspect(d, cid)
        assert info["State"]["Restarting"] and info["Berth"]["NextRestart"]
        r = docker_cli(d, "run", "--rm", "--restart", "always", "busybox", "true")
        assert r.returncode != 0 and "conflicting options: cannot specify both --restart and --rm" in r.stderr
        r = d.cli("run", "--rm", "--restart", "always", "busybox", "true")
        assert r.returncode != 0 and "cannot specify both --restart and --rm" in r.stderr
        r = docker_cli(d, "rm", cid)
        assert r.returncode != 0 and "container is restarting" in r.stderr
        r = docker_cli(d, "stop", cid)
        assert r.returncode == 0, r.stderr
        assert _state(d, cid) == ("exited", 1) and "Berth" not in _inspect(d, cid)
        assert docker_cli(d, "rm", cid).returncode == 0
    finally:
        remove_all_containers(d)
        d.stop()


@needs_docker_cli
def test_unless_stopped_stays_stopped_after_stop_and_a_daemon_restart(make_daemon, busybox_tar):
    d = make_daemon().start()
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        us = docker_cli(d, "run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "300").stdout.strip()
        us_running = docker_cli(d, "run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "300").stdout.strip()
        al = docker_cli(d, "run", "-d", "--restart", "always", "busybox", "sleep", "300").stdout.strip()
        assert docker_cli(d, "stop", "-t", "1", us).returncode == 0
        assert docker_cli(d, "stop", "-t", "1", al).returncode == 0
        time.sleep(0.5)
        assert _state(d, us)[0] == "exited" and _state(d, al)[0] == "exited"
        d.stop()                                # a clean shutdown stops nothing (live restore)
        d.start()
        assert _state(d, us_running)[0] == "running"
        assert until(lambda: _state(d, al)[0] == "running", timeout=20)     # `always` comes back at boot
        time.sleep(0.5)
        assert _state(d, us)[0] == "exited"
        # --shutdown-stop stops them; not a user's stop, so unless-stopped comes back at the next boot
        d.stop()
        d.start("--shutdown-stop")
        d.stop()
        d.start()
        assert until(lambda: _state(d, us_running)[0] == "running", timeout=20)
        assert _state(d, us)[0] == "exited"
    finally:
        remove_all_containers(d)
        d.stop()


def test_a_pending_restart_survives_a_daemon_kill9_and_fires_at_its_time(make_daemon, busybox_tar):
    d = make_daemon().start("--restart-min-delay", "30")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        cid = d.cli("run", "-d", "--restart", "on-failure:5", "busybox", "sh", "-c", "exit 1",
                    check=True).stdout.strip()
        assert until(lambda: _state(d, cid) == ("restarting", 1), timeout=20)
        due = _inspect(d, cid)["Berth"]["NextRestart"]
        d.kill9()
        d.start()                               # no knob now: the due time comes from the log
        info = _inspect(d, cid)
        assert info["State"]["Status"] == "restarting" and info["Berth"]["NextRestart"] == due
        from datetime import datetime
        due_epoch = datetime.strptime(due, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp()
        assert until(lambda: _state(d, cid)[1] >= 2, timeout=due_epoch - time.time() + 20)
        starts = [e for e in _events(d, cid) if e["Action"] == "start"]
        assert starts[1]["timeNano"] / 1e9 >= due_epoch - 0.01       # not before its time
    finally:
        remove_all_containers(d)
        d.stop()
