"""Long-lived requests (attach, /wait, /events, logs -f) off the bounded worker pool.

A streaming view admits itself (`admit`): it takes one of `--max-streams` places (beyond them: 503)
and gets a `Stream`. When the view returns, the gateway (app/server.py) sends the response head from
the worker and hands the rest of the response to a thread of the stream's own, so the worker goes
back to short requests at once. A stream thread costs ~120 KiB of RSS (bench/stress.py); the pool of
`--threads` workers is never held by a stream.

One watcher thread polls every stream's client socket (epoll, EPOLLRDHUP/EPOLLHUP): a departed client
is noticed at once, even when the stream has nothing to send (a silent container, no events), and the
stream's `gone` flag is set and its cancel callbacks run (an attach closes its subscription, which
ends the relay). Streams poll `gone` in their waits (≤ 0.5 s). At daemon shutdown every stream is
ended the same way.
"""
from __future__ import annotations

import logging
import select
import socket
import threading

from app.errors import Unavailable

log = logging.getLogger("berth")


class Stream:
    """One admitted long-lived request."""

    def __init__(self, registry: "StreamRegistry", sock, half_close_counts: bool, kind: str,
                 reusable: bool = False):
        self.registry = registry
        self.sock = sock
        self.kind = kind
        # A response that ends (a /wait) may give its kept-alive connection back for the next request
        # (app/server.py); one that lasts until the client leaves (attach, /events) is closed.
        self.reusable = reusable
        self._after_release = None
        # On TCP a client's close shows only as a read half-close (RDHUP); an attach with stdin
        # half-closes on stdin EOF and keeps reading, so there only a full hang-up counts.
        self.mask = select.EPOLLHUP | select.EPOLLERR | (select.EPOLLRDHUP if half_close_counts else 0)
        self.gone = threading.Event()
        self._cancels: list = []
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        if not half_close_counts and sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # On TCP a full close looks like a half-close until something is sent; keepalive probes
            # find a peer whose socket is gone (RST → EPOLLERR) without writing into the stream.
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
            except OSError:
                pass

    def client_gone(self) -> bool:
        return self.gone.is_set()

    def on_gone(self, callback) -> None:
        """Run `callback()` once the client has gone (or the daemon stops); at once if it already has."""
        with self._lock:
            if not self.gone.is_set():
                self._cancels.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self.gone.is_set():
                return
            self.gone.set()
            callbacks, self._cancels = self._cancels, []
        for callback in callbacks:
            try:
                callback()
            except Exception:           # a cancel must never kill the watcher
                log.exception("stream cancel")

    def after_release(self, callback) -> None:
        """Run `callback()` on the stream's thread once the registry has let go of the stream (and
        stopped watching its socket)."""
        self._after_release = callback

    def run(self, target) -> None:
        """Run `target()` (the rest of the response) on the stream's own thread."""
        def main():
            try:
                target()
            except Exception:
                log.exception("stream %s", self.kind)
            finally:
                self.registry.release(self)
                if self._after_release is not None:
                    try:
                        self._after_release()
                    except Exception:
                        log.exception("stream %s: after release", self.kind)
        self.thread = threading.Thread(target=main, name=f"stream {self.kind}", daemon=True)
        self.registry.watch(self)
        self.thread.start()


class StreamRegistry:
    def __init__(self, limit: int):
        self.limit = limit
        self._streams: set[Stream] = set()
        self._by_fd: dict[int, Stream] = {}
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._closing = False
        self._watcher = threading.Thread(target=self._watch, name="stream-watcher", daemon=True)
        self._watcher.start()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._streams)

    def admit(self, sock, half_close_counts: bool = True, kind: str = "stream", reusable: bool = False) -> Stream:
        with self._lock:
            if self._closing:
                raise Unavailable("the daemon is shutting down")
            if len(self._streams) >= self.limit:
                raise Unavailable(f"too many concurrent streams (limit {self.limit}): try again later")
            stream = Stream(self, sock, half_close_counts, kind, reusable)
            self._streams.add(stream)
        return stream

    def watch(self, stream: Stream) -> None:
        if stream.sock is None:
            return
        try:
            fd = stream.sock.fileno()
            with self._lock:
                self._epoll.register(fd, stream.mask)
                self._by_fd[fd] = stream
        except (OSError, ValueError):
            stream.cancel()             # already closed

    def release(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)
            for fd, s in list(self._by_fd.items()):
                if s is stream:
                    del self._by_fd[fd]
                    try:
                        self._epoll.unregister(fd)
                    except OSError:
                        pass

    def _watch(self) -> None:
        while True:
            try:
                events = self._epoll.poll(0.5)
            except OSError:
                return                  # closed
            for fd, _ in events:
                with self._lock:
                    stream = self._by_fd.pop(fd, None)
                    if stream is not None:
                        try:
                            self._epoll.unregister(fd)
                        except OSError:
                            pass
                if stream is not None:
                    log.debug("stream %s: client gone", stream.kind)
                    stream.cancel()

    def close(self, timeout: float = 5.0) -> None:
        """Daemon shutdown: end every stream, wait for their threads, then cut what is left."""
        with self._lock:
            self._closing = True
            streams = list(self._streams)
        for stream in streams:
            stream.cancel()
        for stream in streams:
            if stream.thread is not None:
                stream.thread.join(timeout / max(len(streams), 1) + 0.1)
        for stream in streams:
            if stream.thread is not None and stream.thread.is_alive() and stream.sock is not None:
                try:
                    stream.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def admit_stream(environ, sock=None, half_close_counts: bool = True, kind: str = "stream",
                 reusable: bool = False) -> Stream | None:
    """Admit the current request as a stream, or None when it is not served by berth's server (the
    Flask test client): then the view runs its body inline, as before. `reusable`: the response ends
    on its own, and its connection may then serve the client's next request."""
    registry = environ.get("berth.streams")
    if registry is None:
        return None
    stream = registry.admit(sock if sock is not None else environ.get("berth.socket"), half_close_counts, kind,
                            reusable)
    environ["berth.stream"] = stream
    return stream


def peer_hung_up(sock, half_close_counts: bool = True) -> bool:
    """The client went away. On a Unix socket a close shows as POLLHUP; on TCP only as POLLRDHUP,
    which a half-close (stdin EOF on an attach) also raises, so that counts only where asked."""
    if sock is None:
        return False
    mask = select.POLLHUP | (select.POLLRDHUP if half_close_counts else 0)
    poller = select.poll()
    poller.register(sock, mask)
    return any(ev & mask for _, ev in poller.poll(0))
