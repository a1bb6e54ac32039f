"""Exits: conmon's exit files watched, the die event recorded, waits for a condition answered."""
from __future__ import annotations

import logging
import time

from app.events.model import Event, NewEvent
from app.projections.containers import LIVE_STATES, container_ids
from app.runtime import faults
from app.runtime.containers import recovery

WATCH_SECONDS = 0.05
WATCH_FALLBACK_SECONDS = 0.5


def _exit_code_of(die: Event) -> int:
    try:
        return int(die.attributes.get("exitCode", "0"))
    except ValueError:
        return 255


class ExitsMixin:
    """The exit watcher, finish, and waits (mixed into the service)."""

    def _watch(self) -> None:
        """Wake on conmon's exit files as they appear (inotify on the exits dir), with a slow poll as
        a safety net; polling alone added up to its interval to every `wait`."""
        notify = self._notify
        try:
            while not self._stop.is_set():
                notify.wait(WATCH_FALLBACK_SECONDS)
                self._collect_exits()
        finally:
            notify.close()

    def _collect_exits(self) -> None:
        try:
            self.reaper.reap()
            for cid in container_ids(self.events, states=LIVE_STATES):
                if self.monitor.exit_code(cid) is not None:
                    self.finish(cid)
                elif self.monitor.conmon_pid(cid, self.bundle(cid)) is None and self.monitor.exit_code(cid) is None:
                    self.finish(cid, code=255)      # conmon died (killed?) and left no code: as reconcile does
        except Exception:  # noqa: BLE001 - the watcher must survive one bad container
            logging.getLogger("berth").exception("exit watcher")

    def finish(self, cid: str, code: int | None = None) -> None:
        """Record an exit: oom/die events, runc state deleted, rootfs unmounted, waiters woken. Holds
        only this container's lock: the watcher never waits behind another container's start."""
        with self._locked(cid) as entry:
            row = self.get(cid)
            if row is None or not row.is_live:
                return
            bundle = self.bundle(cid)
            if code is None:
                code = self.monitor.exit_code(cid)
                if code is None:
                    # The exit file seen outside the lock was a previous run's, removed by a start in
                    # between (restart): this run has not exited. Acting on it killed restarted containers.
                    return
            oom = self.monitor.oom_killed(cid, bundle)
            self.runc.forget_stopped(cid)
            self.overlay.unmount(bundle)
            self.network.detach(cid)            # its rules and port reservations (the veth went with the netns)
            self._reap(cid, bundle, row.pid)
            started = row.started_nano
            events = [NewEvent("container", "oom", cid, self._attrs(row))] if oom else []
            events.append(NewEvent("container", "die", cid, {
                **self._attrs(row), "exitCode": str(code),
                "execDuration": str(max(0, (time.time_ns() - started) // 1_000_000_000))}))
            planned = self.restarts.plan(row, code) if self.restarts else None   # app/runtime/restart/service.py
            self._record(row, events + ([planned] if planned else []))
            self.volumes.stopped(cid)           # unmount events, local-driver mounts let go
            if planned:
                self.restarts.arm(cid, planned.payload["due"])
            entry.changed.notify_all()
            faults.point("exit:after-die")
            if row.host_config.get("AutoRemove"):    # `docker run --rm`
                self.remove(cid, force=False)

    def _reap(self, cid: str, bundle: str, container_pid: int = 0) -> None:
        """conmon is our child when the daemon is a subreaper (app/daemon.py): collect it once it has
        exited (it may outlive the exit file by a moment, so the watcher retries). If conmon itself
        died, the container's init was re-parented to us as well."""
        self.reaper.expect(self.monitor.conmon_pid_any(cid, bundle) or 0, container_pid)
        self.reaper.reap()

    def reconcile(self) -> list[str]:
        """At start: exits that happened while the daemon was away, and whatever a start or rm cut
        short left on the host (recovery.py). Returns what was cleaned that the log did not explain."""
        return recovery.reconcile(self)

    def wait_exit(self, cid: str, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._locked(cid) as entry:     # wait() lets the lock go: finish and others get in
            while True:
                if self.state_of(cid) not in LIVE_STATES:
                    return True
                if self.monitor.exit_code(cid) is not None:
                    self.finish(cid)
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                entry.changed.wait(min(left, WATCH_SECONDS * 4) if left is not None else WATCH_SECONDS * 4)

    def wait_condition(self, cid: str, condition: str, after_seq: int, client_gone=lambda: False) -> int | None:
        """`POST /wait`: block until the condition holds and return the exit code. Exits are read from
        the log after `after_seq` (the log's end when the request arrived), so a container that starts
        and exits between two looks is still seen: polling the state alone missed those."""
        with self._locked(cid) as entry:
            while True:
                row = self.get(cid)
                state = row.state if row is not None else None
                if state in LIVE_STATES and self.monitor.exit_code(cid) is not None:
                    self.finish(cid)
                    continue
                died = self.events.stream_event(f"container:{cid}", "die", after_seq)
                if state is None:               # removed: every condition is over (moby's State.Wait)
                    return self.last_exit_code(cid)
                if condition == "removed":
                    pass
                elif died is not None:
                    return _exit_code_of(died)
                elif condition == "not-running" and state not in LIVE_STATES and state != "restarting":
                    return row.exit_code
                if self._closing.is_set() or self._stop.is_set() or client_gone():
                    return None             # shutdown, or nobody is listening any more
                entry.changed.wait(WATCH_SECONDS * 4)

    def last_exit_code(self, cid: str) -> int:
        """The code of the container's latest `die` event: the log outlives an auto-removed row."""
        died = self.events.stream_event(f"container:{cid}", "die", newest=True)
        return _exit_code_of(died) if died is not None else 0
