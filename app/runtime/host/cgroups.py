"""Container cgroups, in every hierarchy (cgroup v1 controllers, the named systemd one, v2): find,
kill everything inside, remove."""
from __future__ import annotations

import errno
import logging
import os
import signal
import time

CGROUP_ROOT = "/sys/fs/cgroup"
log = logging.getLogger("berth")


def cgroup_dirs(cgroup_parent: str, cid: str) -> list[str]:
    """The container's cgroup in every hierarchy that has one (cgroup v1 controllers, the named
    systemd hierarchy, the unified v2 mount)."""
    try:
        hierarchies = os.listdir(CGROUP_ROOT)
    except FileNotFoundError:
        return []
    found = []
    for hierarchy in hierarchies:
        path = os.path.join(CGROUP_ROOT, hierarchy, cgroup_parent, cid)
        if os.path.isdir(path):
            found.append(path)
    return found


def _cgroup_pids(path: str) -> list[int]:
    pids = []
    for dirpath, _, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as fh:
                    pids += [int(line) for line in fh if line.strip()]
            except OSError:
                pass
    return pids


def kill_cgroup(cgroup_parent: str, cid: str, timeout: float = 5) -> set[int]:
    """SIGKILL everything in the container's cgroups (a `runc init` nobody released, a process a
    killed conmon left), then remove the cgroups. A frozen cgroup is thawed first: a frozen process
    cannot die. Returns the pids it killed (the caller reaps those that were re-parented to it)."""
    dirs = cgroup_dirs(cgroup_parent, cid)
    killed: set[int] = set()
    if not dirs:
        return killed
    for path in dirs:
        if path.startswith(os.path.join(CGROUP_ROOT, "freezer") + "/"):
            try:
                with open(os.path.join(path, "freezer.state"), "w") as fh:
                    fh.write("THAWED")
            except OSError:
                pass
    deadline = time.monotonic() + timeout
    while True:
        pids = {pid for path in dirs for pid in _cgroup_pids(path)}
        killed |= pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.01)        # killed processes leave the cgroup once they have exited
    for path in dirs:
        for dirpath, _, _ in sorted(os.walk(path), key=lambda item: len(item[0]), reverse=True):
            for _ in range(100):            # EBUSY while a killed process is still on its way out
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("cgroup %s left behind: %s", dirpath, err)
                        break
                    time.sleep(0.01)
    return killed


class Cgroups:
    """The adapter the engine hands to the container services: cgroups under one parent."""

    def __init__(self, parent: str):
        self.parent = parent

    def dirs(self, cid: str) -> list[str]:
        return cgroup_dirs(self.parent, cid)

    def kill(self, cid: str, timeout: float = 5) -> set[int]:
        return kill_cgroup(self.parent, cid, timeout)

    def path(self, cid: str) -> str:
        """The cgroupsPath of a container's OCI spec."""
        return f"/{self.parent}/{cid}"

    def remove_parent(self) -> None:
        """At shutdown: drop our parent cgroup where it is empty."""
        for controller in os.listdir(CGROUP_ROOT) if os.path.isdir(CGROUP_ROOT) else ():
            try:
                os.rmdir(os.path.join(CGROUP_ROOT, controller, self.parent))
            except OSError:
                pass
