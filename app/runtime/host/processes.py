"""Processes of this data root on the host: finding them by /proc scan, and reaping the ones that come
to the daemon as the subreaper (app/daemon.py sets PR_SET_CHILD_SUBREAPER): conmons, and the `runc
init` of a start cut short."""
from __future__ import annotations

import os
import re
import threading
import time

ID_RE = re.compile(r"^[0-9a-f]{64}$")


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def reap_exited(pids: set[int], timeout: float = 2) -> None:
    """Wait for killed processes that are (or are about to become) this daemon's children: a killed
    `runc init` is re-parented to the subreaper only once its `runc create` has died too. Processes
    with another parent are left to it."""
    me = os.getpid()
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                pending.discard(pid)            # gone
                continue
            if fields[0] == "Z" and int(fields[1]) == me:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                pending.discard(pid)
            elif fields[0] == "Z" and int(fields[1]) == 1:
                pending.discard(pid)            # init reaps it
        if pending:
            time.sleep(0.01)


def runtime_processes(runc_root: str, exits_dir: str) -> dict[str, list[int]]:
    """conmons and runc commands of this data root, by container id: one scan of /proc, used at
    boot only. Other daemons' processes name other directories and are never touched."""
    found: dict[str, list[int]] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        argv = _cmdline(int(entry))
        if not argv:
            continue
        prog = os.path.basename(argv[0])
        ours = (prog.startswith("conmon") and exits_dir in argv) or (prog.startswith("runc") and runc_root in argv)
        if not ours:
            continue
        cid = next((a for a in argv if ID_RE.match(a)), None)
        if cid is None and prog.startswith("conmon"):
            cid = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-c"), None)
        if cid:
            found.setdefault(cid, []).append(int(entry))
    return found


def _stat(pid: int | str) -> tuple[str, int]:
    """(state letter, parent pid) from /proc/<pid>/stat; OSError when it is gone."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return fields[0], int(fields[1])


class Reaper:
    """Zombies that are this daemon's children and no `subprocess` waits for: exited conmons, and
    the killed `runc init` of a start that `rm -f` cut (re-parented to the subreaper)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: set[int] = set()     # pids to waitpid once they are zombies
        # containers whose start rm -f cancelled: cid -> until when to look for their zombies
        self._cut_starts: dict[str, float] = {}

    def expect(self, *pids: int) -> None:
        with self._lock:
            self._pending.update(p for p in pids if p)

    def watch_cut_start(self, cid: str, seconds: float = 30) -> None:
        with self._lock:
            self._cut_starts[cid] = time.monotonic() + seconds

    def reap(self) -> None:
        """waitpid only zombies whose parent is this daemon, so a recycled pid in a stale pidfile can
        never take the exit status of a child that `subprocess` is waiting for."""
        me = os.getpid()
        self._adopt_zombies_of_cut_starts(me)
        with self._lock:
            pending = list(self._pending)
        for pid in pending:
            try:
                state, parent = _stat(pid)
            except (OSError, IndexError, ValueError):
                self._discard(pid)                  # gone: reaped by someone
                continue
            if parent != me:
                self._discard(pid)                  # not ours to reap (no subreaper, or another parent)
            elif state == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                self._discard(pid)

    def _discard(self, pid: int) -> None:
        with self._lock:
            self._pending.discard(pid)

    def _adopt_zombies_of_cut_starts(self, me: int) -> None:
        """Zombies of this daemon still in the cgroup of a container whose start was cut. They are
        never `subprocess` children, so reaping them is safe. Scans /proc only in the 30 s after
        such a cut."""
        now = time.monotonic()
        with self._lock:
            for cid, until in list(self._cut_starts.items()):
                if until < now:
                    self._cut_starts.pop(cid, None)
            watched = list(self._cut_starts)
        if not watched:
            return
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                state, parent = _stat(name)
                if state != "Z" or parent != me:
                    continue
                with open(f"/proc/{name}/cgroup") as fh:
                    cgroups = fh.read()
            except (OSError, IndexError, ValueError):
                continue
            if any(cid in cgroups for cid in watched):
                self.expect(int(name))
