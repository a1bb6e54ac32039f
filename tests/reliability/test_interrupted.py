"""Every interrupted operation is recoverable: the daemon is SIGKILLed at each step of a start and of an
rm (fault points, app/runtime/faults.py, enabled by BERTH_FAULT), or from outside a few ms into a
start; after a restart without the fault the container starts and runs as if nothing happened, and
`rm -f` leaves nothing on the host. Real daemon, real runc and conmon, docker-py as the client."""
from __future__ import annotations

import os
import signal
import threading
import time

import docker
import pytest

from app.runtime.faults import RM_POINTS, START_POINTS
from tests.integration.conftest import remove_all_containers, until

COMMAND = ["sh", "-c", "echo hello; exit 3"]


def _client(d) -> docker.APIClient:
    return docker.APIClient(base_url=d.host, version="1.45", timeout=60)


def host_traces(d, cid: str) -> list[str]:
    """What the host still holds for the container: mount, runc state, cgroups, processes, bundle,
    exit file, attach socket."""
    root = d.data_root
    found = []
    with open("/proc/self/mountinfo") as fh:
        found += [f"mount {line.split()[4]}" for line in fh if cid in line.split()[4]]
    for path in (os.path.join(root, "runc", cid), os.path.join(root, "containers", cid),
                 os.path.join(root, "exits", cid), os.path.join(root, "s", cid)):
        if os.path.lexists(path):
            found.append(path)
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", hierarchy, d.cgroup_parent, cid)
        if os.path.isdir(path):
            found.append(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/cgroup") as fh:
                cgroups = fh.read()
            if cid not in cmdline and cid not in cgroups:
                continue
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read().rpartition(")")[2].split()[:2]
        except OSError:
            continue  # the process ended while we looked
        found.append(f"process {pid} ({' '.join(stat)}): {cmdline[:80]}")
    return found


@pytest.fixture
def berth(make_daemon, busybox_tar):
    """Start daemons on one data root, with or without a fault, and leave nothing behind at the end."""
    made = []

    def start(fault: str | None = None):
        d = made[0] if made else make_daemon()
        env = dict(os.environ)
        env.pop("BERTH_FAULT", None)
        if fault:
            env["BERTH_FAULT"] = fault
        d.start(env=env)
        if not made:
            d.cli("import", busybox_tar, "busybox:latest", check=True)
            made.append(d)
        return d

    yield start
    if made:
        d = made[0]
        if d.proc.poll() is not None:
            start()
        remove_all_containers(d)
        d.stop()


def _killed(d, timeout: float = 30) -> bool:
    d.proc.wait(timeout)
    return d.proc.returncode == -signal.SIGKILL


def _proves_recovered(d, cid: str, rerun: bool = True) -> None:
    """After the restart: start works (output and exit code right), then rm -f leaves nothing."""
    api = _client(d)
    try:
        if rerun:
            state = api.inspect_container(cid)["State"]
            assert not state["Running"], state
            api.start(cid)
            assert api.wait(cid, timeout=30)["StatusCode"] == 3
            assert api.logs(cid).decode().endswith("hello\n")
        api.remove_container(cid, force=True)
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(cid)
    finally:
        api.close()
    assert until(lambda: not host_traces(d, cid), timeout=15), host_traces(d, cid)


@pytest.mark.parametrize("point", START_POINTS)
def test_a_start_killed_at_any_step_is_recovered(berth, point):
    d = berth(fault=point)
    api = _client(d)
    cid = api.create_container("busybox", COMMAND)["Id"]
    with pytest.raises(Exception):      # the daemon dies under the request
        api.start(cid)
    api.close()
    assert _killed(d), f"the fault point {point} was not reached"
    d = berth()
    _proves_recovered(d, cid)


@pytest.mark.parametrize("delay_ms", [10, 25, 40])
def test_a_start_killed_from_outside_a_few_ms_in_is_recovered(berth, delay_ms):
    """The issue's report: SIGKILL 10-50 ms into a start left runc state, `runc init` and a mount,
    and every later start failed with `container with given ID already exists`."""
    d = berth()
    api = _client(d)
    cid = api.create_container("busybox", COMMAND)["Id"]
    starter = threading.Thread(target=lambda: _ignore_errors(api.start, cid))
    starter.start()
    time.sleep(delay_ms / 1000)
    d.kill9()
    starter.join(30)
    api.close()
    d = berth()
    _proves_recovered(d, cid)


def _ignore_errors(fn, *args):
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - the daemon was killed under the request
        pass


@pytest.mark.parametrize("point", RM_POINTS)
def test_an_rm_killed_at_any_step_is_finished_at_boot(berth, point):
    d = berth(fault=point)
    api = _client(d)
    cid = api.create_container("busybox", ["sleep", "300"], name="doomed")["Id"]
    api.start(cid)
    with pytest.raises(Exception):
        api.remove_container(cid, force=True)
    api.close()
    assert _killed(d), f"the fault point {point} was not reached"
    d = berth()
    api = _client(d)
    try:
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(cid)          # the removal was finished at boot
        assert until(lambda: not host_traces(d, cid), timeout=15), host_traces(d, cid)
        again = api.create_container("busybox", COMMAND, name="doomed")["Id"]    # the name is free again
    finally:
        api.close()
    _proves_recovered(d, again)


def test_an_autoremove_container_whose_die_was_recorded_before_a_kill_is_removed_at_boot(berth):
    d = berth(fault="exit:after-die")
    api = _client(d)
    cid = api.create_container("busybox", ["sh", "-c", "exit 5"], host_config=api.create_host_config(
        auto_remove=True))["Id"]
    api.start(cid)
    api.close()
    assert _killed(d), "the daemon did not die after recording the exit"
    d = berth()
    api = _client(d)
    try:
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(cid)
        dies = [e for e in api.events(since=0, until=time.time() + 1, decode=True,
                                      filters={"container": cid, "event": "die"})]
        assert [e["Actor"]["Attributes"]["exitCode"] for e in dies] == ["5"]
    finally:
        api.close()
    assert not host_traces(d, cid), host_traces(d, cid)


def test_autoremove_containers_not_running_at_boot_are_removed(berth):
    """As moby's restore: an AutoRemove container that is not running when the daemon starts goes."""
    d = berth()
    api = _client(d)
    created = api.create_container("busybox", ["true"], host_config=api.create_host_config(auto_remove=True))["Id"]
    kept = api.create_container("busybox", ["true"])["Id"]
    api.close()
    d.kill9()
    d = berth()
    api = _client(d)
    try:
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(created)
        assert api.inspect_container(kept)["State"]["Status"] == "created"
    finally:
        api.close()


def test_rm_f_of_a_hanging_start_kills_and_removes_everything(berth):
    d = berth(fault="start:before-release=hang")
    api = _client(d)
    cid = api.create_container("busybox", COMMAND)["Id"]
    failure: list[Exception] = []

    def start():
        try:
            api.start(cid)
        except Exception as err:  # noqa: BLE001 - expected: the start is ended by rm -f
            failure.append(err)

    starter = threading.Thread(target=start)
    starter.start()
    # the start hangs after `runc create`: runc init, conmon, cgroups and the mount exist
    assert until(lambda: any(t.startswith("process") for t in host_traces(d, cid)) and os.path.isdir(
        os.path.join(d.data_root, "runc", cid)), timeout=20), host_traces(d, cid)
    remover = _client(d)
    began = time.monotonic()
    try:
        remover.remove_container(cid, force=True)
    finally:
        remover.close()
    took = time.monotonic() - began
    starter.join(20)
    api.close()
    assert not starter.is_alive() and failure, "the hanging start did not end with an error"
    assert took < 10, took
    assert until(lambda: not host_traces(d, cid), timeout=15), host_traces(d, cid)
    assert d.proc.poll() is None
