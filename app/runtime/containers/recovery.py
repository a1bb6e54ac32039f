"""Recovery: bring the host back in line with the store after an operation was cut short — the daemon
SIGKILLed in the middle of a start or an rm, or a start that hangs and is force-removed.

The store is the truth. A container the log does not show running must have nothing on the host but
its directory (upper layer, log): no conmon, no `runc init`, no runc state, no cgroup, no mount. A
start cut before its `start` event is therefore rolled back, even when the process was already
released: the client never heard that the start succeeded, and a half-recorded run (no pid, no
start time) would be worse than none. A container the log shows running keeps running if its conmon
is alive and runc knows it; otherwise its exit is recorded (255 when nobody saw the code).

An rm leaves `<containers dir>/<id>.removing` before it touches anything and deletes it after
`destroy` is appended, so a cut rm is finished at the next boot. AutoRemove containers that are not
running at boot are removed, as moby's daemon restore does.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading

from app.projections.containers import LIVE_STATES, container_ids, get_container
from app.runtime.host.processes import ID_RE, reap_exited, runtime_processes
from app.runtime.host.runc import RuncError

REMOVING_SUFFIX = ".removing"
log = logging.getLogger("berth")


# ---------------------------------------------------------------------------------- a start in flight

class StartAttempt:
    """A start in flight (Containers._starting); `rm -f` cancels it to end it."""

    def __init__(self):
        self.cancelled = threading.Event()
        self.thread = threading.current_thread()
        self.killed: set[int] = set()       # pids rm -f killed; the start reaps them when it undoes itself

    def check(self, cid: str) -> None:
        if self.cancelled.is_set():
            raise RuncError(f"container {cid} was removed while it was starting")


def cancel_start(containers, cid: str, attempt: StartAttempt) -> None:
    """Mark the start cancelled and kill what it made so far, so that its waits end (sync pipe EOF,
    the released pid gone, a hang fault point) and it undoes itself and fails."""
    attempt.cancelled.set()
    containers.monitor.kill(cid, containers.bundle(cid))      # conmon, and the `runc create` it runs
    attempt.killed |= containers.cgroups.kill(cid)                 # `runc init`


def undo_start(containers, cid: str, bundle: str, pid: int, attempt: StartAttempt) -> None:
    """A start that failed, timed out or was cancelled: kill and remove whatever it made."""
    c = containers
    killed = set(attempt.killed) | {pid, init_pid(c.runc.root, cid)}
    try:
        c.runc.delete(cid, force=True)
    except RuncError as err:
        log.warning("runc delete %s: %s", cid[:12], err)
    conmon = c.monitor.conmon_pid_any(cid, bundle)
    c.monitor.kill(cid, bundle)
    killed |= c.cgroups.kill(cid)
    shutil.rmtree(os.path.join(c.runc.root, cid), ignore_errors=True)
    c.overlay.unmount(bundle)
    # killed processes (conmon, a `runc init` whose `runc create` died) come to us as the subreaper
    reap_exited({p for p in killed | {conmon} if p})


def init_pid(runc_root: str, cid: str) -> int:
    """The container's init pid from runc's state (known before conmon has reported it)."""
    try:
        with open(os.path.join(runc_root, cid, "state.json")) as fh:
            return int(json.load(fh).get("init_process_pid") or 0)
    except (OSError, ValueError, TypeError):
        return 0


# ---------------------------------------------------------------------------------- per container

def sweep(containers, cid: str, pids: list[int] = ()) -> bool:
    """Remove everything a stopped (or never started) container may have left on the host except its
    directory: conmon, runc commands, `runc init`, runc state, cgroups, the rootfs mount, the exit
    file and attach socket. At boot, before anything else runs. True if anything was found."""
    c = containers
    bundle = c.bundle(cid)
    found = False
    conmon = c.monitor.conmon_pid(cid, bundle)
    if conmon:
        found = True
        c.monitor.kill(cid, bundle)
    for pid in pids:
        found = True
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if c.runc.known(cid):
        found = True
        try:
            c.runc.delete(cid, force=True)      # kills a `runc init` still waiting to be released
        except Exception as err:  # noqa: BLE001 - what is left is removed by hand below
            log.warning("runc delete %s: %s", cid[:12], err)
        shutil.rmtree(os.path.join(c.runc.root, cid), ignore_errors=True)
    if c.cgroups.dirs(cid):
        found = True
        c.cgroups.kill(cid)
    rootfs = os.path.join(bundle, "rootfs")
    if os.path.isdir(rootfs) and c.overlay.is_mounted(rootfs):
        found = True
    c.overlay.unmount(bundle)
    if found:
        c.monitor.cleanup(cid, bundle)
        try:
            os.unlink(os.path.join(bundle, "config.json"))     # written again by the next start
        except FileNotFoundError:
            pass
    return found


def removal_marker(containers, cid: str) -> str:
    return os.path.join(containers.dir, cid + REMOVING_SUFFIX)


def mark_removing(containers, cid: str) -> None:
    with open(removal_marker(containers, cid), "w"):
        pass


def unmark_removing(containers, cid: str) -> None:
    try:
        os.unlink(removal_marker(containers, cid))
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------- at boot

def _guarded(what: str, cid: str, fn, *args) -> None:
    """One container's trouble must not keep the daemon from starting: log it and go on."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001
        log.exception("recovery: %s %s", what, cid[:12])


def _recover_running(c, cid: str) -> None:
    bundle = c.bundle(cid)
    if c.monitor.exit_code(cid) is not None:
        c.finish(cid)
    elif c.monitor.conmon_pid(cid, bundle) is None:
        c.finish(cid, code=255)
    elif not c.runc.known(cid):             # conmon alive, runc knows nothing: nothing to manage
        c.monitor.kill(cid, bundle)
        c.cgroups.kill(cid)
        c.finish(cid, code=255)


def _finish_removal(c, cid: str) -> None:
    if c.is_running(cid):                   # cut before its exit was seen: rm -f's SIGKILL
        c.monitor.kill(cid, c.bundle(cid))
        c.cgroups.kill(cid)
        c.finish(cid, code=137)
    if c.get(cid) is not None:
        log.info("finishing the removal of %s", cid[:12])
        c.remove(cid, force=True)
    unmark_removing(c, cid)


def _sweep_unknown(c, cid: str, pids: list[int], cleaned: list[str]) -> None:
    cleaned.append(f"leftovers of {cid}, a container the log does not know")
    sweep(c, cid, pids)
    c.monitor.cleanup(cid, c.bundle(cid))
    if os.path.isdir(c.bundle(cid)):
        c.overlay.unmount(c.bundle(cid))
        shutil.rmtree(c.bundle(cid), ignore_errors=True)


def _sweep_stopped(c, cid: str, pids: list[int], cleaned: list[str]) -> None:
    if sweep(c, cid, pids):
        log.info("cleaned up an interrupted start or removal of %s", cid[:12])
        cleaned.append(f"runtime pieces of {cid}, which the log shows not running")


def reconcile(containers) -> list[str]:
    """Run once at engine start, before the exit watcher: see the module docstring. Returns what was
    removed that the log did not account for (the engine records each as a daemon `cleanup` event)."""
    c = containers
    cleaned: list[str] = []
    # No lock held across: nothing else runs yet (the API serves and the watcher starts after boot),
    # and finish and remove take each container's own lock.
    procs = runtime_processes(c.runc.root, c.monitor.exits_dir)
    # 1. containers the log shows running: still running, exited meanwhile, or lost
    for cid in container_ids(c.events, states=LIVE_STATES):
        _guarded("exit of", cid, _recover_running, c, cid)
    # 2. removals that were cut: finish them
    for name in os.listdir(c.dir):
        if name.endswith(REMOVING_SUFFIX):
            cid = name[:-len(REMOVING_SUFFIX)]
            _guarded("removal of", cid, _finish_removal, c, cid)
    rows = {cid: get_container(c.events, cid) for cid in container_ids(c.events)}
    stopped = [cid for cid, row in rows.items() if row is not None and not row.is_live]
    # 3. containers that are not running: a start or rm cut at any point leaves its pieces here
    for cid in stopped:
        _guarded("clean-up of", cid, _sweep_stopped, c, cid, procs.get(cid, []), cleaned)
    # 4. runtime leftovers of ids the store does not know
    unknown = set(procs)
    unknown.update(os.listdir(c.runc.root))
    for directory in (c.dir, c.monitor.exits_dir, c.monitor.sockets_dir):
        unknown.update(n for n in os.listdir(directory) if ID_RE.match(n))
    for cid in sorted(unknown - set(rows)):
        _guarded("leftovers of", cid, _sweep_unknown, c, cid, procs.get(cid, []), cleaned)
    # 5. AutoRemove containers that are not running go, as in moby's restore
    for cid in stopped:
        if rows[cid].host_config.get("AutoRemove"):
            _guarded("auto-removal of", cid, c.remove, cid, True)
    return cleaned
