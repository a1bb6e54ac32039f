"""Restart policies applied: the decision at each exit, the pending restart as an event, its job on the
daemon's scheduler, and the re-arming of pending restarts at boot.

Events (container stream, berth bookkeeping: not Docker actions, so /events does not stream them):
- `restart-scheduled` {due, delay}: appended with the `die` it follows, in one transaction; the
  projection moves the container to `restarting` and counts it in RestartCount (moby increments
  RestartCount when it decides to restart, daemon/monitor.go);
- `restart-cancelled` {reason}: a user's stop/kill between restarts, or a restart whose start failed;
  the container is `exited` again.
The start at the due time is a plain `start` event: moby emits `die` then `start` for a policy
restart (`restart` is only `docker restart`'s).

"Stopped by the user" (moby's HasBeenManuallyStopped), read from the log: since the container's last
`start`, a `kill` audit event with SIGKILL or the container's stop signal (a stop sends that), or a
`restart-cancelled` by the user — unless a `shutdown-stop` audit event (the daemon's --shutdown-stop)
came first. A user's start clears it, as it clears RestartCount (the projection resets the count on a
start that does not come from `restarting`).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from app.events.model import NewEvent
from app.projections.containers import container_ids
from app.runtime.host.runc import parse_signal
from app.runtime.restart import policy

log = logging.getLogger("berth")


def job_id(cid: str) -> str:
    return f"restart:{cid}"


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Restarts:
    def __init__(self, store, containers, scheduler, min_delay: float = 0.0, clock=time.time):
        self.store = store
        self.containers = containers
        self.scheduler = scheduler
        self.min_delay = float(min_delay or 0)      # test knob (daemon --restart-min-delay), 0 in production
        self.clock = clock
        self.shutting_down = threading.Event()

    # ------------------------------------------------------------------------------ facts from the log

    def _newest_seq(self, stream: str, action: str) -> int:
        ev = self.store.stream_event(stream, action, newest=True)
        return ev.seq if ev is not None else 0

    def manually_stopped(self, cid: str, stop_signal: int = 15) -> bool:
        started = self._newest_seq(f"container:{cid}", "start")
        audit = f"container-audit:{cid}"
        if self.store.stream_event(audit, "shutdown-stop", started) is not None:
            return False
        cancelled = self.store.stream_event(f"container:{cid}", "restart-cancelled", started, newest=True)
        if cancelled is not None and (cancelled.payload or {}).get("by_user"):
            return True
        after = started
        for _ in range(100):            # the kills of one run: a handful
            ev = self.store.stream_event(audit, "kill", after)
            if ev is None:
                return False
            if ev.attributes.get("signal") in ("9", str(stop_signal)):
                return True
            after = ev.seq
        return True

    def _stop_signal(self, row) -> int:
        try:
            return parse_signal(row.config.get("StopSignal") or "TERM")
        except Exception:  # noqa: BLE001
            return 15

    def _last_schedule(self, cid: str):
        return self.store.stream_event(f"container:{cid}", "restart-scheduled", newest=True)

    def next_restart(self, row) -> float | None:
        """The due time of a container's pending restart (epoch seconds), or None."""
        if row.state != "restarting":
            return None
        ev = self._last_schedule(row.id)
        return float((ev.payload or {}).get("due", 0)) if ev is not None else None

    def inspect_extra(self, row) -> dict:
        """berth's fields beyond Docker's in inspect: {"Berth": {"NextRestart": ...}} while one is pending."""
        due = self.next_restart(row)
        return {"Berth": {"NextRestart": _rfc3339(due)}} if due is not None else {}

    # ------------------------------------------------------------------------------ hooks of the containers service

    def plan(self, row, code: int) -> NewEvent | None:
        """At a die (exits.finish, under the container's lock): the `restart-scheduled` event to append
        with it, or None."""
        name, retries = policy.policy_of(row.host_config)
        if name == "no" or self.shutting_down.is_set():
            return None
        now = self.clock()
        last_delay = 0.0
        if row.restart_count:
            ev = self._last_schedule(row.id)
            last_delay = float((ev.payload or {}).get("delay", 0)) if ev is not None else 0.0
        ran_for = max(0.0, now - row.started_nano / 1e9) if row.started_nano else 0.0
        decision = policy.decide(name, retries, code, self.manually_stopped(row.id, self._stop_signal(row)),
                                 row.restart_count,
                                 ran_for, last_delay)
        if not decision.restart:
            return None
        wait = max(decision.delay, self.min_delay)
        return NewEvent("container", "restart-scheduled", row.id, {"name": row.name},
                        payload={"due": now + wait, "delay": decision.delay, "exitCode": code})

    def arm(self, cid: str, due: float) -> None:
        self.scheduler.at(job_id(cid), due, self.fire, cid)

    def killed(self, row, number: int) -> None:
        """A user's kill of a container between restarts (under its lock): with SIGKILL or the stop signal
        it cancels the pending restart (moby's ExitOnNext; its kill sends nothing then). A kill of a
        running container needs nothing here: its `kill` audit event is the mark (manually_stopped)."""
        if row.state == "restarting" and number in (9, self._stop_signal(row)):
            self.cancel(row, "stopped by the user", by_user=True)

    def cancel(self, row, reason: str, by_user: bool = False) -> None:
        """End a pending restart (caller holds the container's lock): job dropped, state `exited`."""
        self.scheduler.cancel(job_id(row.id))
        self.containers._record(row, [NewEvent("container", "restart-cancelled", row.id, {"name": row.name},
                                               payload={"reason": reason, "by_user": by_user})])
        self.containers._notify_changed(row.id)

    def removed(self, cid: str) -> None:
        self.scheduler.cancel(job_id(cid))

    # ------------------------------------------------------------------------------ jobs

    def fire(self, cid: str, from_boot: bool = False) -> None:
        """The due time came: start the container again through the containers service, under its lock."""
        c = self.containers
        with c._locked(cid):
            row = c.get(cid)
            if row is None or self.shutting_down.is_set():
                return
            if from_boot:
                if row.state != "exited" or not self.comes_back_at_boot(row):
                    return
            elif row.state != "restarting":
                return                      # cancelled meanwhile
            try:
                c.start(cid, _policy=True)
            except Exception as err:  # noqa: BLE001 - recorded; the container stays exited, as moby's SetStopped
                log.warning("restart of %s failed: %s", cid[:12], err)
                row = c.get(cid)
                if row is not None and row.state == "restarting":
                    self.cancel(row, f"start failed: {err}")

    def comes_back_at_boot(self, row) -> bool:
        """moby's restore: `always`, and `unless-stopped` unless the user stopped it."""
        name, _ = policy.policy_of(row.host_config)
        return name == "always" or (name == "unless-stopped" and
                                    not self.manually_stopped(row.id, self._stop_signal(row)))

    def boot(self) -> None:
        """After reconciliation: pending restarts re-armed at their due time (a due time in the past
        runs now), `always`/`unless-stopped` containers that are not running started."""
        for cid in container_ids(self.store, states=("restarting",)):
            row = self.containers.get(cid)
            due = self.next_restart(row) if row is not None else None
            self.arm(cid, due if due is not None else self.clock())
        for cid in container_ids(self.store, states=("exited",)):
            row = self.containers.get(cid)
            if row is not None and policy.policy_of(row.host_config)[0] != "no" and self.comes_back_at_boot(row):
                self.scheduler.at(job_id(cid), self.clock(), self.fire, cid, True)

    def begin_shutdown(self) -> None:
        self.shutting_down.set()

    def stop_all(self) -> None:
        """`--shutdown-stop`: stop every live container (in parallel, each with its stop timeout). Not a
        user's stop: `unless-stopped` containers come back at the next boot."""
        from app.projections.containers import LIVE_STATES
        cids = container_ids(self.store, states=LIVE_STATES)
        if cids:
            self.store.append([NewEvent("container", "shutdown-stop", cid, {}, stream=f"container-audit:{cid}")
                               for cid in cids])
        threads = [threading.Thread(target=self._stop_quietly, args=(cid,), name=f"shutdown-stop {cid[:12]}")
                   for cid in cids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _stop_quietly(self, cid: str) -> None:
        try:
            self.containers.stop(cid)
        except Exception:  # noqa: BLE001 - one container must not keep the daemon from stopping
            log.exception("stopping %s at shutdown", cid[:12])
