"""conmon as the per-container monitor, with the real runc: exit codes, logs, OOM, and containers that
outlive the process that started them."""
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from app.runtime.containers.logs import messages, render, select
from app.runtime.host.conmon import Monitor, parse_log_line
from app.runtime.host.runc import Runc, RuncError
from tests.integration.bundles import bundle
from tests.integration.conftest import ROOT

RUNC, CONMON = shutil.which("runc"), shutil.which("conmon")
pytestmark = pytest.mark.skipif(not (RUNC and CONMON), reason="runc and conmon are needed")


@pytest.fixture
def monitor(workdir):
    return Monitor(CONMON, Runc(RUNC, os.path.join(workdir, "runc")), os.path.join(workdir, "exits"),
                   os.path.join(workdir, "s"))


def wait_exit(monitor, cid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = monitor.exit_code(cid)
        if code is not None:
            return code
        time.sleep(0.02)
    raise AssertionError("no exit file")


def finish(monitor, cid, cdir):
    monitor.runc.delete(cid, force=True)
    deadline = time.monotonic() + 10
    while monitor.conmon_pid(cid, cdir) and time.monotonic() < deadline:
        time.sleep(0.02)
    monitor.cleanup(cid, cdir)


def log_records(monitor, cid, cdir):
    with open(monitor.files(cid, cdir).log, "rb") as fh:
        return [parse_log_line(line)[1:] for line in fh]


def test_exit_code_and_logs(monitor, workdir, image_layers):
    with bundle(workdir, image_layers, {"Cmd": ["sh", "-c", "echo out; echo err >&2; printf part; exit 7"]}) as (cid, cdir):
        try:
            pid = monitor.create(cid, cdir, "t1")
            assert pid > 0 and monitor.runc.state(cid)["status"] == "created"
            assert monitor.conmon_pid(cid, cdir)
            monitor.start(cid, pid)
            assert not os.path.exists(os.path.join(monitor.runc.root, cid, "exec.fifo"))
            assert wait_exit(monitor, cid) == 7
            records = log_records(monitor, cid, cdir)   # stdout and stderr are separate pipes: order per stream
            assert [r for r in records if r[0] == "stdout"] == [("stdout", False, b"out"), ("stdout", True, b"part")]
            assert [r for r in records if r[0] == "stderr"] == [("stderr", False, b"err")]
            with open(monitor.files(cid, cdir).log, "rb") as fh:        # as `docker logs` will serve it
                served = b"".join(render(m, timestamps=False, tty=False) for m in select(messages(fh)))
            frames, pos = [], 0
            while pos < len(served):
                stream, size = struct.unpack(">BxxxL", served[pos:pos + 8])
                frames.append((stream, served[pos + 8:pos + 8 + size]))
                pos += 8 + size
            assert sorted(frames) == [(1, b"out\n"), (1, b"part"), (2, b"err\n")]
            assert not monitor.oom_killed(cid, cdir)
        finally:
            finish(monitor, cid, cdir)
    assert not os.path.exists(os.path.join(workdir, "exits", cid))


def test_create_failure_is_reported_and_leaves_no_monitor(monitor, workdir, image_layers):
    with bundle(workdir, image_layers, {"Cmd": ["/no/such/binary"]}) as (cid, cdir):
        try:
            with pytest.raises(RuncError) as err:
                monitor.create(cid, cdir, "t2")
            assert "no such file or directory" in str(err.value)
            deadline = time.monotonic() + 10               # conmon reports, then exits
            while monitor.conmon_pid(cid, cdir) is not None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert monitor.conmon_pid(cid, cdir) is None
        finally:
            finish(monitor, cid, cdir)


def test_container_outlives_the_process_that_started_it(monitor, workdir, image_layers):
    with bundle(workdir, image_layers, {"Cmd": ["sh", "-c", "sleep 1; echo done; exit 5"]}) as (cid, cdir):
        starter = ("import sys\nfrom app.runtime.host.conmon import Monitor\nfrom app.runtime.host.runc import Runc\n"
                   f"m = Monitor({CONMON!r}, Runc({RUNC!r}, {monitor.runc.root!r}), {monitor.exits_dir!r}, "
                   f"{monitor.sockets_dir!r})\n"
                   f"p = m.create({cid!r}, {cdir!r}, 't3'); m.start({cid!r}, p)\n"
                   "print('started', flush=True)\nimport time; time.sleep(60)\n")
        proc = subprocess.Popen([sys.executable, "-c", starter], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "started"
            os.kill(proc.pid, signal.SIGKILL)                  # the "daemon" dies …
            proc.wait()
            assert monitor.runc.state(cid)["status"] == "running"   # … the container does not
            assert wait_exit(monitor, cid) == 5                # and its exit code is still recorded
            assert ("stdout", False, b"done") in log_records(monitor, cid, cdir)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            finish(monitor, cid, cdir)


def test_oom_kill_is_recorded(monitor, workdir, image_layers):
    cfg = {"Cmd": ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]}
    with bundle(workdir, image_layers, cfg, {"Memory": 32 << 20, "MemorySwap": 32 << 20}) as (cid, cdir):
        try:
            pid = monitor.create(cid, cdir, "t4")
            monitor.start(cid, pid)
            assert wait_exit(monitor, cid) == 137
            assert monitor.oom_killed(cid, cdir)
        finally:
            finish(monitor, cid, cdir)


def test_parse_log_line():
    assert parse_log_line(b"2026-11-27T19:32:45.848546768+00:00 stdout F hello world\n") == \
        ("2026-11-27T19:32:45.848546768+00:00", "stdout", False, b"hello world")
    assert parse_log_line(b"2026-11-27T19:32:45.8+00:00 stderr P \n")[1:] == ("stderr", True, b"")
    assert parse_log_line(b"garbage") is None


def test_kill_ends_a_created_containers_conmon_and_kill_cgroup_its_runc_init(monitor, workdir, image_layers):
    """What recovery does to a start cut before the release: conmon (and its process group) killed,
    the `runc init` waiting on exec.fifo killed through the cgroup, the cgroups removed."""
    from app.runtime.host.cgroups import cgroup_dirs, kill_cgroup
    parent = "berth-test-" + os.path.basename(workdir)
    with bundle(workdir, image_layers, {"Cmd": ["true"]}) as (cid, cdir):
        try:
            init = monitor.create(cid, cdir, "t5")
            conmon = monitor.conmon_pid(cid, cdir)
            assert conmon and cgroup_dirs(parent, cid)
            monitor.kill(cid, cdir)
            deadline = time.monotonic() + 5
            while monitor.conmon_pid(cid, cdir) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert monitor.conmon_pid(cid, cdir) is None
            assert os.path.exists(f"/proc/{init}")              # killing conmon leaves runc init …
            assert init in kill_cgroup(parent, cid)              # … which the cgroup sweep kills
            assert not cgroup_dirs(parent, cid)
            deadline = time.monotonic() + 5
            while monitor.runc.state(cid) and monitor.runc.state(cid)["status"] != "stopped" \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            assert monitor.runc.state(cid)["status"] == "stopped"
        finally:
            finish(monitor, cid, cdir)


def test_kill_never_signals_a_process_that_is_not_the_containers_conmon(monitor, workdir):
    cid, cdir = "c" * 64, os.path.join(workdir, "ctr")
    os.makedirs(monitor.files(cid, cdir).userdata)
    stranger = subprocess.Popen(["sleep", "30"])             # a recycled pid in a stale pidfile
    try:
        with open(os.path.join(monitor.files(cid, cdir).userdata, "conmon.pid"), "w") as fh:
            fh.write(str(stranger.pid))
        monitor.kill(cid, cdir)
        time.sleep(0.1)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
