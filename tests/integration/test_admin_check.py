"""`berth admin check`: the projections against a fresh replay of the log and against the host, with a
real daemon and real containers; each kind of difference is made on purpose and must be reported."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import CLI, ROOT, until


def check(d, *extra):
    return subprocess.run([sys.executable, CLI, "admin", "check", "--data-root", d.data_root,
                           "--cgroup-parent", d.cgroup_parent, *extra],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_a_busy_daemon_has_no_differences_and_each_planted_one_is_found(daemon, busybox, workdir):
    d = daemon
    running = d.cli("run", "-d", "-p", "127.0.0.1::80", "-v", "/data", "busybox", "sleep", "300",
                    check=True).stdout.strip()
    d.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "scratch", check=True)
    d.cli("run", "-d", "-v", "scratch:/scratch", "busybox", "sleep", "300", check=True)
    d.cli("run", "busybox", "true", check=True)
    d.cli("create", "busybox", "true", check=True)

    r = check(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No differences between the projections and a fresh replay and the host" in r.stdout

    # a runc state dir for a container the log never had
    ghost = "ab" * 32
    os.makedirs(os.path.join(d.data_root, "runc", ghost))
    try:
        r = check(d)
        assert r.returncode == 1
        assert f"runc has state for {ghost[:12]}, a container the log does not know" in r.stdout
    finally:
        os.rmdir(os.path.join(d.data_root, "runc", ghost))
    assert check(d).returncode == 0

    # a DNAT rule in our chain that no running container's port explains
    bridge = d.cli("network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}', "bridge",
                   check=True).stdout.strip()
    chain = f"BERTH-DNAT-{bridge}"
    stray = ["-p", "tcp", "-m", "tcp", "--dport", "1", "-j", "DNAT", "--to-destination", "127.0.0.1:1"]
    subprocess.run(["iptables", "-t", "nat", "-A", chain, *stray], check=True)
    try:
        r = check(d)
        assert r.returncode == 1
        assert f"iptables nat {chain}: rule for no running container's port: {' '.join(stray)}" in r.stdout
    finally:
        subprocess.run(["iptables", "-t", "nat", "-D", chain, *stray], check=True)
    d.cli("rm", "-f", running, check=True)
    assert check(d).returncode == 0


def test_a_container_that_died_while_the_daemon_was_away(make_daemon, busybox_tar):
    d = make_daemon().start()
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    cid = d.cli("run", "-d", "busybox", "sleep", "300", check=True).stdout.strip()
    pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", cid, check=True).stdout)
    assert d.stop() == 0                          # a clean shutdown leaves the container running
    assert check(d).returncode == 0

    os.kill(pid, signal.SIGKILL)
    conmon_pid = os.path.join(d.data_root, "containers", cid, "userdata", "conmon.pid")
    until(lambda: not os.path.exists(f"/proc/{int(open(conmon_pid).read())}"), timeout=10)
    r = check(d)
    assert r.returncode == 1
    assert f"container {cid[:12]} is running in the log but its process is gone" in r.stdout
    assert f"container {cid[:12]} is running in the log but its conmon is not running" in r.stdout

    d.start()                                     # boot reconciliation records the exit
    assert d.cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid, check=True).stdout.split() \
        == ["exited", "137"]
    d.stop()
    r = check(d)
    assert r.returncode == 0, r.stdout
    d.start()
    d.cli("rm", "-f", cid, check=True)
    d.stop()


def test_a_projection_that_drifted_from_the_log(make_daemon, busybox_tar):
    d = make_daemon().start()
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    cid = d.cli("create", "--name", "before", "busybox", "true", check=True).stdout.strip()
    d.stop()
    db = sqlite3.connect(os.path.join(d.data_root, "berth.db"))
    db.execute("UPDATE containers SET name='after' WHERE id=?", (cid,))
    db.commit()
    db.close()

    r = check(d, "--no-runtime")
    assert r.returncode == 1
    assert "projection containers: row not in a fresh replay:" in r.stdout and "name='after'" in r.stdout
    assert "projection containers: a fresh replay has a row the projection lacks:" in r.stdout
    assert "name='before'" in r.stdout
    assert "2 difference(s)" in r.stderr

    rebuilt = subprocess.run([sys.executable, CLI, "admin", "rebuild-projections", "--data-root", d.data_root],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert check(d).returncode == 0


def test_a_missing_store_is_an_error(workdir):
    r = subprocess.run([sys.executable, CLI, "admin", "check", "--data-root", os.path.join(workdir, "none")],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and "no berth store in" in r.stderr


@pytest.mark.parametrize("garbage", [b"", b"not a database at all" * 100])
def test_a_damaged_store_is_an_error_not_a_traceback(workdir, garbage):
    root = os.path.join(workdir, "root")
    os.makedirs(root)
    with open(os.path.join(root, "berth.db"), "wb") as fh:
        fh.write(garbage)
    r = subprocess.run([sys.executable, CLI, "admin", "check", "--data-root", root],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr


def test_boot_removes_unknown_leftovers_and_records_each_as_a_daemon_event(make_daemon, busybox_tar):
    import json
    d = make_daemon().start()
    d.stop()
    ghost = "cd" * 32
    leftovers = [os.path.join(d.data_root, "runc", ghost), os.path.join(d.data_root, "containers", ghost),
                 os.path.join(d.data_root, "volumes", "strayvolume", "_data")]
    for path in leftovers:
        os.makedirs(path)
    r = check(d)
    assert r.returncode == 1
    assert f"runc has state for {ghost[:12]}, a container the log does not know" in r.stdout
    assert f"directory {leftovers[1]} belongs to no container the log knows" in r.stdout

    d.start()
    assert not any(os.path.exists(p) for p in leftovers)
    out = d.cli("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "type=daemon", "--filter", "event=cleanup",
                "--format", "{{json .}}", check=True).stdout
    d.stop()
    # `cleanup` is berth bookkeeping (not Docker vocabulary): in the log, not streamed by /events
    db = sqlite3.connect(os.path.join(d.data_root, "berth.db"))
    rows = db.execute("SELECT attributes FROM events WHERE type='daemon' AND action='cleanup'").fetchall()
    db.close()
    removed = sorted(json.loads(r[0])["removed"] for r in rows)
    assert removed == [f"leftovers of {ghost}, a container the log does not know",
                       "the directory of volume strayvolume, which the log does not know"], removed
    assert check(d).returncode == 0
