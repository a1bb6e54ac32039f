"""inotify on conmon's exit directory, so an exit is seen the moment conmon reports it."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import select

POLL_SECONDS = 0.05         # where inotify is unavailable


class ExitDirWatch:
    """inotify on conmon's exit directory: conmon writes `<id>.tmp` and renames it to `<id>`."""

    IN_MOVED_TO, IN_CLOSE_WRITE, IN_NONBLOCK, IN_CLOEXEC = 0x80, 0x8, 0o4000, 0o2000000

    def __init__(self, path: str):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._wake_r, self._wake_w = os.pipe()   # close() wakes a waiting watcher at once
        self.fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if self.fd >= 0 and libc.inotify_add_watch(self.fd, path.encode(), self.IN_MOVED_TO | self.IN_CLOSE_WRITE) < 0:
            os.close(self.fd)
            self.fd = -1

    def wait(self, timeout: float) -> None:
        fds = [self._wake_r] + ([self.fd] if self.fd >= 0 else [])
        ready, _, _ = select.select(fds, [], [], timeout if self.fd >= 0 else POLL_SECONDS)
        if self.fd in ready:
            try:
                os.read(self.fd, 65536)   # drain; which file changed does not matter
            except BlockingIOError:
                pass

    def wake(self) -> None:
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self.fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
