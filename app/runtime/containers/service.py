"""The containers service: one object, its verbs in one module each (create.py, start.py, stop.py,
exits.py, remove.py, attach.py, fs.py, processes.py), mixed in here.

The containers projection is the state; every change is an appended event. Runtime facts (an exit
file appeared, conmon vanished while the daemon was down) enter as events too, from `reconcile` at
boot, which also cleans up what a start or rm cut short left on the host (recovery.py).

Construction does no I/O beyond creating the containers directory and starts no thread;
`boot()` is the boot step (reconcile, then the exit watcher), `close()` undoes it.
"""
from __future__ import annotations

import os
import threading

from app.config import Config
from app.errors import ConcurrentChange, Conflict, InvalidParameter, NotFound
from app.events.model import NewEvent
from app.events.store import EventStore
from app.projections import containers as q
from app.projections.containers import Container
from app.runtime.containers import recovery
from app.runtime.containers.attach import AttachHub, AttachMixin, _AttachWaiter
from app.runtime.containers.create import CreateMixin
from app.runtime.containers.exec import ExecMixin
from app.runtime.containers.exits import ExitsMixin
from app.runtime.containers.fs import FsMixin
from app.runtime.containers.processes import ProcessesMixin
from app.runtime.containers.remove import RemoveMixin
from app.runtime.containers.start import StartMixin
from app.runtime.containers.stop import StopMixin
from app.runtime.host import Host
from app.runtime.host.exitwatch import ExitDirWatch


def audit_stream(cid: str) -> str:
    return f"container-audit:{cid}"


class Containers(CreateMixin, StartMixin, StopMixin, ExitsMixin, RemoveMixin, AttachMixin, FsMixin,
                 ProcessesMixin, ExecMixin):
    def __init__(self, events: EventStore, images, host: Host, config: Config, data_root: str):
        self.events = events
        self.images = images
        self.host = host
        self.config = config
        self.runc = host.runc
        self.monitor = host.conmon
        self.overlay = host.overlay
        self.cgroups = host.cgroups
        self.reaper = host.reaper
        self.dir = os.path.join(data_root, "containers")
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        self.lock = threading.RLock()
        self.exited = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._attach_waiters: dict[str, list[_AttachWaiter]] = {}
        self._hubs: dict[str, AttachHub] = {}     # running containers' single conmon attach connections
        self._closing = threading.Event()
        self.closing = self._closing          # read by streaming handlers (attach with logs) to end
        self._starting: dict[str, recovery.StartAttempt] = {}    # guarded by its own lock: the start holds self.lock
        self._starting_lock = threading.Lock()
        self._notify: ExitDirWatch | None = None
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------------------ boot and shutdown

    def boot(self) -> None:
        """Boot: bring the host in line with the log, then watch for exits."""
        self.reconcile()
        self.reconcile_execs()
        self._notify = ExitDirWatch(self.monitor.exits_dir)
        self._watcher = threading.Thread(target=self._watch, name="exit-watcher", daemon=True)
        self._watcher.start()

    def end_attaches(self) -> None:
        """Daemon shutdown: end every attach stream (containers keep running; clients see EOF)."""
        self._closing.set()
        with self.lock:
            hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            hub.close()

    def close(self) -> None:
        """Stop watching (containers keep running under conmon); drop our cgroup parent if empty."""
        self._stop.set()
        if self._watcher is not None:
            self._notify.wake()
            self._watcher.join()
        self.cgroups.remove_parent()

    # ------------------------------------------------------------------------------ lookups

    def resolve(self, ref: str) -> Container:
        """Full ID, name (with or without "/"), or a unique ID prefix; Docker's NotFound otherwise."""
        found = q.find_containers(self.events, ref)
        if len(found) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        if not found:
            raise NotFound(f"No such container: {ref}")
        return found[0]

    def get(self, cid: str) -> Container | None:
        return q.get_container(self.events, cid)

    def state_of(self, cid: str) -> str | None:
        return q.container_state(self.events, cid)

    def is_running(self, cid: str) -> bool:
        return self.state_of(cid) in q.LIVE_STATES

    def bundle(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    # ------------------------------------------------------------------------------ appends

    def _record(self, row: Container, events: list[NewEvent]) -> None:
        """Append events that change the container's state, decided on `row`: with its stream
        version as expected_version, so a change that came in between is noticed. The decision is
        retried once on a fresh read if the state it rested on is the same (a rename came between),
        else, or if it changes again, the command fails with 409."""
        stream = f"container:{row.id}"
        for attempt in (0, 1):
            first = next((ev for ev in events if ev.stream == stream), None)
            if first is not None:       # the batch is one transaction: its first event carries the check
                first.expected_version = row.version
            try:
                self.events.append(events)
                return
            except ConcurrentChange:
                fresh = self.get(row.id)
                if attempt or fresh is None or fresh.state != row.state:
                    raise Conflict(f"container {row.id} was changed by another request meanwhile; try again") \
                        from None
                row = fresh

    def _note(self, row: Container, action: str, **attrs) -> None:
        """An audit event (attach, top, kill, stop …): shown by /events, changes no state, so it goes
        to the container's audit stream and never makes a state change's expected_version stale."""
        self.events.append([NewEvent("container", action, row.id, {**self._attrs(row), **attrs},
                                     stream=audit_stream(row.id))])

    def _attrs(self, row: Container) -> dict:
        """Docker's attributes of a container event, labels aside: /events adds those (app/events/labels.py)."""
        return {"image": row.image, "name": row.name}
