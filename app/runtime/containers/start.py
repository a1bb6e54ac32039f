"""start: the bundle (rootfs, config.json), conmon and runc, the start event; undone when cut."""
from __future__ import annotations

import json
import logging
import os
import socket
import threading

from app.errors import Conflict, InvalidParameter, NotFound, NotModified
from app.projections.containers import Container
from app.events.model import NewEvent
from app.runtime import faults
from app.runtime.containers import recovery
from app.runtime.containers.security import pid_mode, uts_host
from app.runtime.containers.spec import build_spec
from app.runtime.host.errors import classify
from app.runtime.host.runc import RuncError


def _exit_code_for(err: Exception) -> int:
    """Docker's exit code for a start the runtime refused: 127 not found, 126 not executable."""
    text = str(err)
    if any(s in text for s in ("executable file not found", "no such file or directory", "not a directory")):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 128


class StartMixin:
    """Containers.start and what undoes a failed or cancelled start."""

    def start(self, ref: str, _policy: bool = False) -> None:
        """`_policy`: a restart policy's start (app/runtime/restart/service.py), the only one from `restarting`."""
        # Only this container's lock is held: the mount, bundle, conmon and runc of one start never
        # hold up another container's verbs or the exit watcher (service.py, "Locking").
        with self._locked_row(ref) as row:
            if row.state == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if row.state == "running" or (row.state == "restarting" and not _policy):
                raise NotModified("container already started")
            attempt = recovery.StartAttempt()
            with self._starting_lock:
                self._starting[row.id] = attempt
            try:
                self._prepare_and_run(row, attempt)
            except Exception as failure:
                # The one error boundary of a start: whatever failed (runc, conmon, the mount, an
                # OSError such as ENOSPC or a vanished layer dir) is recorded, its attaches released,
                # and it answers with a classified error (_prepare_and_run has undone the host side).
                err = classify(failure, f"failed to start container {row.id[:12]}")
                self._release_attach_waiters(row.id)    # as moby cancels attaches on a failed start
                if attempt.cancelled.is_set():             # rm -f ended it; the removal follows
                    raise Conflict(f"container {row.id} was removed while it was starting") from failure
                code = _exit_code_for(err)
                self._record(row, [NewEvent("container", "start-failed", row.id, self._attrs(row),
                                                   payload={"error": str(err), "exit_code": code})])
                if row.host_config.get("AutoRemove"):
                    self.remove(row.id, force=True)     # as Docker: a --rm container that cannot start goes
                if isinstance(err, RuncError) and code in (126, 127):
                    raise InvalidParameter(str(err)) from failure
                if err is failure:
                    raise
                raise err from failure
            finally:
                with self._starting_lock:
                    self._starting.pop(row.id, None)

    def _cancel_start(self, cid: str) -> bool:
        """`rm -f` of a container whose start is in flight (it may hang in runc or conmon)."""
        with self._starting_lock:
            attempt = self._starting.get(cid)
        if attempt is None or attempt.thread is threading.current_thread():
            return False                # none, or the start's own AutoRemove after it failed
        self.reaper.watch_cut_start(cid)        # its killed runc init may come back a zombie
        recovery.cancel_start(self, cid, attempt)
        return True

    def _undo_start(self, cid: str, bundle: str, pid: int, attempt: recovery.StartAttempt) -> None:
        try:
            recovery.undo_start(self, cid, bundle, pid, attempt)
        except Exception:  # noqa: BLE001 - the start's own error is the one to report; boot sweeps the rest
            logging.getLogger("berth").exception("undoing the start of %s", cid[:12])
        self._reap(cid, bundle)             # a conmon that reported the failure exits

    def _prepare_and_run(self, row: Container, attempt: recovery.StartAttempt) -> None:
        cid = row.id
        bundle = self.bundle(cid)
        os.makedirs(bundle, mode=0o711, exist_ok=True)
        config, host_config = row.config, row.host_config
        image_row, _ = self.images.resolve(row.image_id)
        image_cfg = image_row.config.get("config") or {}
        layers = self.images.layer_dirs(image_row)
        # the host's UTS namespace shows the host's name, in /etc/hostname and $HOSTNAME too (as moby)
        hostname = socket.gethostname() if uts_host(host_config) else (config.get("Hostname") or cid[:12])
        etc, netns, config = self.network.prepare(row, bundle, hostname)    # /etc files, netns to join, link env
        pid_ns = self._pid_namespace_to_join(host_config)
        rootfs = self.overlay.mount(bundle, layers)
        pid = 0
        try:
            faults.point("start:after-mount")
            attempt.check(cid)
            volume_mounts, volume_events = self.volumes.prepare_start(row, rootfs)     # app/runtime/volumes
            spec = build_spec(rootfs=rootfs, container_id=cid, image_config=image_cfg, config=config,
                              host_config=host_config, hostname=hostname,
                              cgroups_path=self.cgroups.path(cid), netns_path=netns, etc_files=etc,
                              pid_ns_path=pid_ns, daemon_seccomp=self.config.seccomp_profile,
                              daemon_no_new_privileges=self.config.no_new_privileges,
                              extra_mounts=volume_mounts)
            with open(os.path.join(bundle, "config.json"), "w") as fh:
                fh.write(json.dumps(spec))      # dumps uses the C encoder; dump() iterates in Python
            faults.point("start:after-bundle")
            self.monitor.cleanup(cid, bundle)     # an exit file of a previous run
            attempt.check(cid)
            pid = self.monitor.create(cid, bundle, row.name, stdin=bool(config.get("OpenStdin")),
                                      stdin_once=bool(config.get("StdinOnce")), tty=bool(config.get("Tty")),
                                      keep_log=(host_config.get("LogConfig") or {}).get("Type") != "none")
            faults.point("start:after-runc-create")
            attempt.check(cid)
            self.network.attach(row, pid)           # veths, addresses, published ports (before the process runs)
            self._connect_waiting_attaches(cid, bundle)   # before the process runs: no output is missed
            faults.point("start:before-release", attempt.cancelled)
            attempt.check(cid)
            self.monitor.start(cid, pid)
            faults.point("start:after-release")
            attempt.check(cid)
            # in the undone part: a start whose event cannot be written leaves no process behind
            self._record(row, volume_events +
                         [NewEvent("container", "start", cid, self._attrs(row), payload={"pid": pid})])
        except BaseException:
            self.network.detach(cid)
            self._undo_start(cid, bundle, pid, attempt)
            self.volumes.start_failed(cid)
            raise
        faults.point("start:after-start-event")

    def _pid_namespace_to_join(self, host_config: dict) -> str | None:
        """/proc/<pid>/ns/pid of the container PidMode `container:<id>` names; moby's errors when it is
        gone or not running. The other container's row is read without its lock (one container lock
        per thread); the start of this one fails anyway if that one exits meanwhile."""
        kind, target = pid_mode(host_config)
        if kind != "container":
            return None
        try:
            other = self.resolve(target)
        except NotFound as err:
            raise NotFound(f"failed to join PID namespace: {err}") from None
        if other.state not in ("running", "paused") or not other.pid:
            raise Conflict(f"failed to join PID namespace: container {other.id} is not running")
        return f"/proc/{other.pid}/ns/pid"
