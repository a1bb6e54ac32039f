"""kill, stop, pause, unpause, restart."""
from __future__ import annotations

from app.errors import Conflict, NotModified
from app.events.model import NewEvent
from app.runtime.host.runc import RuncError, parse_signal


class StopMixin:
    """Signals and the freezer (mixed into the service)."""

    def kill(self, ref: str, signal: str | int = "KILL", wait: bool = False) -> None:
        """Send a signal. With `wait` (the API's kill), SIGKILL returns only once the container has
        exited (10 s at most), as moby's ContainerKill does, so an inspect right after sees it stopped."""
        number = parse_signal(signal)
        if wait and number == 9:
            cid = self.resolve(ref).id
            self.kill(ref, 9)                # the reference as given: Docker's message names it
            self._thaw(cid)                  # a frozen process cannot die
            self.wait_exit(cid, 10)
            return
        with self._locked_row(ref) as row:
            not_running = Conflict(f"cannot kill container: {ref}: container {row.id} is not running")
            if row.state == "restarting" and self.restarts:    # between restarts: no process to signal
                self.restarts.killed(row, number)
                return
            if not row.is_live:
                raise not_running
            try:
                self.runc.kill(row.id, number)
            except RuncError as err:
                if "not running" in str(err):   # it exited just now; the watcher records it
                    raise not_running from err
                raise
            self._note(row, "kill", signal=str(number))

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        row = self.resolve(ref)
        if not row.is_live and row.state != "restarting":
            raise NotModified("container already stopped")
        config = row.config
        sig = parse_signal(signal or config.get("StopSignal") or "TERM")
        if timeout is None:
            timeout = config.get("StopTimeout")
        timeout = 10 if timeout is None else int(timeout)
        try:
            self.kill(row.id, sig)
        except (Conflict, RuncError):
            pass
        self._thaw(row.id)                  # a frozen process cannot act on (or die of) a signal
        if not self.wait_exit(row.id, timeout if timeout >= 0 else None):   # negative: wait for ever
            try:
                self.kill(row.id, 9)
            except (Conflict, RuncError):
                pass
            self.wait_exit(row.id, None)
        # `row` may be gone by now (AutoRemove); its attributes still name the container
        self._note(row, "stop")

    def pause(self, ref: str) -> None:
        with self._locked_row(ref) as row:
            if row.state == "paused":
                raise Conflict(f"Container {row.id} is already paused")
            if row.state != "running":
                raise Conflict(f"container {row.id} is not running")
            self.runc.pause(row.id)       # the cgroup freezer
            self._record(row, [NewEvent("container", "pause", row.id, self._attrs(row))])

    def _thaw(self, cid: str) -> None:
        """Unfreeze a paused container so a signal sent to it takes effect (Docker does the same)."""
        with self._locked(cid):
            row = self.get(cid)
            if row is not None and row.state == "paused":
                try:
                    self.runc.resume(cid)
                except RuncError:
                    return
                self._record(row, [NewEvent("container", "unpause", cid, self._attrs(row))])

    def unpause(self, ref: str) -> None:
        with self._locked_row(ref) as row:
            if row.state != "paused":
                raise Conflict(f"Container {row.id} is not paused")
            self.runc.resume(row.id)
            self._record(row, [NewEvent("container", "unpause", row.id, self._attrs(row))])

    def restart(self, ref: str, timeout: int | None = None) -> None:
        row = self.resolve(ref)
        if row.is_live or row.state == "restarting":     # a pending policy restart is cancelled first
            self.stop(row.id, timeout)
        self.start(row.id)
        row = self.resolve(row.id)
        self._note(row, "restart")
