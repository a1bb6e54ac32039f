"""The engine: the daemon's state in one object — data root, event store, identity, shutdown flag.

One engine owns one data root at a time: an exclusive lock on <data-root>/berth.lock keeps a second
daemon (or an offline `admin` command) away while this one runs.
"""
from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
import uuid

from app.config import Config
from app.events.model import NewEvent
from app.events.labels import ContainerLabels
from app.events.store import EventStore
from app.projections import all_projectors
from app.projections.containers import LIVE_STATES, container_ids
from app.runtime.containers import Containers
from app.runtime.host import Host, real_host
from app.runtime.images import Images
from app.runtime.volumes import Volumes
from app.runtime.network import Networks
from app.runtime.restart.scheduler import Scheduler
from app.runtime.restart.service import Restarts


class DataRootBusy(Exception):
    pass


def lock_data_root(data_root: str) -> int:
    """Take the data root's exclusive lock; return its fd (held until closed)."""
    os.makedirs(data_root, mode=0o711, exist_ok=True)
    path = os.path.join(data_root, "berth.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DataRootBusy(
            f"data root {data_root} is in use by a running berth daemon (pid {holder}); "
            "stop it first, or give this one another --data-root") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _engine_id(data_root: str) -> str:
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as fh:
            return fh.read().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(value + "\n")
        os.replace(tmp, path)
        return value


class Engine:
    """The composition root: builds the services with their dependencies passed in.

    Construction opens the data root (its lock, the store) and builds objects; it starts no thread and
    touches no container. `start()` is the boot phase, in a fixed order; `close()` undoes it.
    `host` replaces the real host adapters (tests pass fakes, tests/fakes.py)."""

    def __init__(self, config: Config, host: Host | None = None):
        self.config = config
        self.data_root = os.path.abspath(config.data_root)
        self._lock_fd = lock_data_root(self.data_root)
        self.store = None
        try:
            self.id = _engine_id(self.data_root)
            self.store = EventStore(os.path.join(self.data_root, "berth.db"), all_projectors())
            self.container_labels = ContainerLabels(self.store)
            self.host = host or real_host(self.data_root, config.runtime, None, config.cgroup_parent)
            self.images = Images(self.store, os.path.join(self.data_root, "image"), config)
            self.volumes = Volumes(self.store, self.data_root, self.host.volmounts)
            self.containers = Containers(self.store, self.images, self.host, config, self.data_root,
                                         volumes=self.volumes)
            self.networks = self.containers.network = Networks(self.store, self.host, config, self.containers)
            self.scheduler = Scheduler()    # restarts and health probes (app/runtime/restart/)
            self.restarts = self.containers.restarts = Restarts(self.store, self.containers, self.scheduler,
                                                                config.restart_min_delay)
        except BaseException:
            if self.store is not None:
                self.store.close()
            os.close(self._lock_fd)
            raise
        self.started_ns = time.time_ns()
        self.shutting_down = threading.Event()
        self._listeners = 0
        self._listeners_lock = threading.Lock()

    def start(self) -> "Engine":
        """Boot, in this order:
        1. the store's background work (WAL checkpoints);
        2. images: drop layers and blobs no image names (an import or delete cut short);
        3. containers: reconcile the host against the projections (exits missed while the daemon was
           away, starts and removals cut short), then the exit watcher.
        4. networks: the predefined networks, running containers' networking adopted, unused bridges
           and chains swept (app/runtime/network/service.py).
        5. the scheduler (app/runtime/restart/scheduler.py); restart policies and health checks arm
           their jobs on it after this step."""
        self.store.start()
        self.images.boot()
        self.containers.boot()
        cleaned = list(self.containers.cleaned_at_boot)
        cleaned += self.volumes.reconcile(set(container_ids(self.store, states=LIVE_STATES)))
        self._record_cleanups(cleaned)
        self.networks.boot()
        self.scheduler.start()
        self.restarts.boot()            # pending restarts re-armed at their due time; always/unless-stopped back
        return self

    # /events subscribers, for /info's NEventsListener
    def listener_added(self) -> None:
        with self._listeners_lock:
            self._listeners += 1

    def listener_removed(self) -> None:
        with self._listeners_lock:
            self._listeners -= 1

    @property
    def event_listeners(self) -> int:
        return self._listeners

    def daemon_event(self, action: str) -> None:
        self.store.append([NewEvent("daemon", action, self.id, {"name": socket.gethostname()})])

    def _record_cleanups(self, cleaned: list[str]) -> None:
        """Boot removed host pieces the log did not account for (a crash mid-operation, another
        process's debris under our data root): one daemon `cleanup` event each, so the audit trail
        says what was found and removed."""
        if cleaned:
            self.store.append([NewEvent("daemon", "cleanup", self.id, {"name": socket.gethostname(), "removed": what})
                               for what in cleaned])

    def begin_shutdown(self) -> None:
        self.shutting_down.set()
        self.restarts.begin_shutdown()
        self.store.wake_waiters()
        self.containers.end_attaches()

    def close(self) -> None:
        """Undo start() in reverse: stop watching (containers keep running under conmon), close the store."""
        self.begin_shutdown()
        self.scheduler.close()          # no restart or probe starts while the rest shuts down
        if self.config.shutdown_stop:   # --shutdown-stop; by default containers keep running (live restore)
            self.restarts.stop_all()
        self.containers.close()
        self.networks.close()
        self.store.close()
        os.close(self._lock_fd)
