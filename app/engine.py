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
    def __init__(self, config: Config):
        self.config = config
        self.data_root = os.path.abspath(config.data_root)
        self._lock_fd = lock_data_root(self.data_root)
        try:
            self.id = _engine_id(self.data_root)
            self.store = EventStore(os.path.join(self.data_root, "berth.db"), all_projectors())
            self.container_labels = ContainerLabels(self.store)
            from app.runtime.images import Images
            self.images = Images(self, os.path.join(self.data_root, "image"))
            from app.runtime.containers import Containers
            self.containers = Containers(self, config.runtime, None)
        except BaseException:
            if getattr(self, "store", None) is not None:
                self.store.close()
            os.close(self._lock_fd)
            raise
        self.started_ns = time.time_ns()
        self.shutting_down = threading.Event()
        self._listeners = 0
        self._listeners_lock = threading.Lock()

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

    def begin_shutdown(self) -> None:
        self.shutting_down.set()
        self.store.wake_waiters()
        self.containers.end_attaches()

    def close(self) -> None:
        self.begin_shutdown()
        self.containers.close()
        self.store.close()
        os.close(self._lock_fd)
