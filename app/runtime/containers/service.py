"""The containers service: one object, its verbs in one module each (create.py, start.py, stop.py,
exits.py, remove.py, attach.py, fs.py, processes.py, stats.py, update.py), mixed in here.

The containers projection is the state; every change is an appended event. Runtime facts (an exit
file appeared, conmon vanished while the daemon was down) enter as events too, from `reconcile` at
boot, which also cleans up what a start or rm cut short left on the host (recovery.py).

Construction does no I/O beyond creating the containers directory and starts no thread;
`boot()` is the boot step (reconcile, then the exit watcher), `close()` undoes it.

Locking. Each container has its own lock (`_locked(cid)`), held by every step of its lifecycle
(start, kill, pause/unpause, rm, finish, attach hub set-up), so one container's slow start (mount,
conmon, runc) never delays another's start, stop, rm or exit. Rules:
- the registry lock and the tables lock are leaves: nothing is called while holding them;
- a thread holds at most one container's lock (re-entered freely: AutoRemove's remove from finish,
  a failed start's AutoRemove). Reading another container (PidMode container:<id>) reads the
  projection and takes no lock;
- `rm -f` cancels an in-flight start *before* it takes the lock the start holds (the cancel kills
  what the start waits on, so the start ends and lets go);
- waits (`wait_exit`, `wait_condition`) sleep on the container's Condition, which releases its lock;
  finish and destroy notify it.
Entries are counted by their users and dropped when the last one lets go: the registry holds only
containers someone is acting on or waiting for. Names need no lock: create and rename check them
inside the append transaction (create.py's guards).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from app.config import Config
from app.errors import ConcurrentChange, Conflict, InvalidParameter, NotFound
from app.events.model import NewEvent
from app.events.store import EventStore
from app.projections import containers as q
from app.projections.containers import Container
from app.runtime.containers import recovery
from app.runtime.containers.archive import ArchiveMixin
from app.runtime.containers.commit import CommitMixin
from app.runtime.containers.attach import AttachHub, AttachMixin, _AttachWaiter
from app.runtime.containers.create import CreateMixin
from app.runtime.containers.exec import ExecMixin
from app.runtime.containers.exits import ExitsMixin
from app.runtime.containers.fs import FsMixin
from app.runtime.containers.processes import ProcessesMixin
from app.runtime.containers.remove import RemoveMixin
from app.runtime.containers.start import StartMixin
from app.runtime.containers.stats import StatsMixin
from app.runtime.containers.stop import StopMixin
from app.runtime.containers.update import UpdateMixin
from app.runtime.host import Host
from app.runtime.host.exitwatch import ExitDirWatch


class _ContainerLock:
    """One container's lock, the Condition its waits sleep on, and how many threads use it."""
    __slots__ = ("lock", "changed", "users")

    def __init__(self):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.users = 0


def audit_stream(cid: str) -> str:
    return f"container-audit:{cid}"


class Containers(CreateMixin, StartMixin, StopMixin, ExitsMixin, RemoveMixin, AttachMixin, FsMixin,
                 ProcessesMixin, ExecMixin, StatsMixin, UpdateMixin, ArchiveMixin, CommitMixin):
    def __init__(self, events: EventStore, images, host: Host, config: Config, data_root: str, volumes=None):
        self.events = events
        self.volumes = volumes            # app/runtime/volumes (mount points, copy-in, volume events)
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
        self._locks: dict[str, _ContainerLock] = {}
        self._locks_lock = threading.Lock()     # the registry; a leaf
        self._tables_lock = threading.Lock()    # _hubs and _attach_waiters as wholes; a leaf
        self._stop = threading.Event()
        self._attach_waiters: dict[str, list[_AttachWaiter]] = {}
        self._hubs: dict[str, AttachHub] = {}     # running containers' single conmon attach connections
        self._closing = threading.Event()
        self.closing = self._closing          # read by streaming handlers (attach with logs) to end
        self._starting: dict[str, recovery.StartAttempt] = {}    # its own lock: the start holds the container's
        self._starting_lock = threading.Lock()
        self._notify: ExitDirWatch | None = None
        self._watcher: threading.Thread | None = None
        self.cleaned_at_boot: list[str] = []    # what reconcile removed that the log did not explain
        self.network = None                   # the networks service (app/runtime/network), wired by the engine
        self.restarts = None                  # restart policies (app/runtime/restart/service.py), wired by the engine

    # ------------------------------------------------------------------------------ boot and shutdown

    def boot(self) -> None:
        """Boot: bring the host in line with the log, then watch for exits."""
        self.cleaned_at_boot = self.reconcile()
        self.reconcile_execs()
        self._notify = ExitDirWatch(self.monitor.exits_dir)
        self._watcher = threading.Thread(target=self._watch, name="exit-watcher", daemon=True)
        self._watcher.start()

    def end_attaches(self) -> None:
        """Daemon shutdown: end every attach stream (containers keep running; clients see EOF)."""
        self._closing.set()
        with self._tables_lock:
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

    # ------------------------------------------------------------------------------ per-container locks

    @contextmanager
    def _locked(self, cid: str) -> Iterator[_ContainerLock]:
        """Hold the container's lock; yields its entry (`.changed` is the Condition waits use)."""
        with self._locks_lock:
            entry = self._locks.get(cid)
            if entry is None:
                entry = self._locks[cid] = _ContainerLock()
            entry.users += 1
        try:
            with entry.lock:
                yield entry
        finally:
            with self._locks_lock:
                entry.users -= 1
                if not entry.users:         # nobody acts on or waits for it: no entry kept
                    del self._locks[cid]

    @contextmanager
    def _locked_row(self, ref: str) -> Iterator[Container]:
        """Resolve `ref`, hold that container's lock, and yield its row as read under the lock."""
        cid = self.resolve(ref).id
        with self._locked(cid):
            row = self.get(cid)
            if row is None:                 # removed while we waited for the lock
                raise NotFound(f"No such container: {ref}")
            yield row

    def _notify_changed(self, cid: str) -> None:
        """Wake the container's waiters (caller holds its lock, so the entry exists)."""
        entry = self._locks.get(cid)
        if entry is not None:
            entry.changed.notify_all()

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
