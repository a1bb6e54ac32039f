"""Connections wait outside the worker pool until a whole request head has arrived.

cheroot hands every new connection to a worker, which then reads the request line and headers
itself: a client that connects and says nothing, or sends its head a byte a second (slowloris),
holds a worker for as long as it likes; 64 of them stopped the daemon. `HeadGate` replaces cheroot's
ConnectionManager (same interface): one thread accepts, reads heads with non-blocking reads from an
epoll set, and gives a connection to the pool only once its head is complete (the bytes read are put
back into cheroot's reader, so cheroot parses them as usual). Bounds:
- `head_timeout`: a head must be complete this long after the connection opened, or after its first
  byte on a kept-alive connection; else 408 and close;
- `idle_timeout`: a kept-alive connection with nothing to say is closed after this long;
- `MAX_HEAD`: a longer head gets 431 and is closed;
- `max_connections`: connections open beyond this get 503 and are closed at once (never queued);
  a connection handed to a stream (app/streams.py) no longer counts here, it counts as a stream.
A TLS listener's sockets are wrapped here and their handshake is driven by the same non-blocking
reads, under the same head deadline.

A stream whose response ends cleanly (a finished /wait) can give its kept-alive connection back here
(`BerthConnection.lend` / `stream_done`), as a worker does after a short request.
"""
from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time

from cheroot import makefile, server as cheroot_server

MAX_HEAD = 256 * 1024


def _reply(status: str, message: str) -> bytes:
    body = json.dumps({"message": message}).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class BerthConnection(cheroot_server.HTTPConnection):
    """cheroot's connection, counted while open, with the head bytes the gate has read so far."""

    gate: "HeadGate | None" = None
    head = b""
    deadline = 0.0
    head_started = False
    handshaking = False
    _lent = None        # [holders, reuse] while a stream thread has the connection (see lend)

    def lend(self) -> None:
        """A worker hands this kept-alive connection to a stream thread, which ends with
        `stream_done(reuse)`. Both the worker (its close() after the request) and the stream let go;
        whichever is last closes the connection or gives it back to the gate, so a stream that ends
        before the worker has left never races it. While lent it is a stream, not a connection."""
        self._lent_lock = threading.Lock()
        self._lent = [2, False]
        if self.gate is not None:
            self.gate._closed_one()

    def stream_done(self, reuse: bool) -> None:
        self._lent[1] = reuse
        self._let_go()

    def _let_go(self) -> None:
        with self._lent_lock:
            self._lent[0] -= 1
            if self._lent[0]:
                return
            reuse, self._lent = self._lent[1], None
        gate = self.gate
        if reuse and gate is not None and gate.readmit(self):
            return
        self.gate = None                # no longer counted: lend() took it off the count
        self.close()

    def close(self):
        if self._lent is not None:
            self._let_go()              # the worker leaving a lent connection
            return
        gate, self.gate = self.gate, None
        if gate is not None:
            gate._closed_one()
        super().close()


class HeadGate:
    def __init__(self, server, max_connections: int, head_timeout: float, idle_timeout: float,
                 ssl_context: ssl.SSLContext | None = None):
        self.server = server
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self._epoll = select.epoll()
        self._listen_fd = server.socket.fileno()
        self._epoll.register(self._listen_fd, select.EPOLLIN)
        self._waiting: dict[int, BerthConnection] = {}
        self._lock = threading.Lock()
        self._open = 0
        self._stop_requested = False
        self._serving = False

    # ------------------------------------------------------------------ cheroot's interface

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def _num_connections(self) -> int:
        return len(self._waiting)

    @property
    def can_add_keepalive_connection(self) -> bool:
        limit = self.server.keep_alive_conn_limit
        return limit is None or len(self._waiting) < limit

    def put(self, conn: BerthConnection) -> None:
        """A worker is done with a kept-alive connection: wait for its next head here."""
        rfile = conn.rfile
        conn.head = bytes(rfile._read_buf[rfile._read_pos:])     # pipelined bytes, if any
        rfile._reset_read_buf()
        now = time.monotonic()
        conn.head_started = bool(conn.head)
        conn.deadline = now + (self.head_timeout if conn.head else self.idle_timeout)
        if self._complete(conn):
            self._dispatch(conn, registered=False)
            return
        self._wait(conn)

    def readmit(self, conn: BerthConnection) -> bool:
        """A lent connection comes back from its stream (see BerthConnection.lend); False when the
        gate cannot take it (full, or the server stopping): the caller closes it."""
        with self._lock:
            if self._stop_requested or not self.server.ready or self._open >= self.max_connections:
                return False
            self._open += 1
        try:
            self.put(conn)
        except (OSError, ValueError):   # its socket is gone after all
            conn.close()
        return True

    def run(self, expiration_interval: float) -> None:
        self._serving = True
        try:
            last_expiry = time.monotonic()
            while not self._stop_requested:
                try:
                    events = self._epoll.poll(0.25)
                except OSError:
                    return
                for fd, _ in events:
                    if fd == self._listen_fd:
                        for _ in range(64):         # a burst of connects in one wake-up
                            if not self._accept():
                                break
                    else:
                        with self._lock:
                            conn = self._waiting.get(fd)
                        if conn is not None:
                            self._read(conn)
                now = time.monotonic()
                if now - last_expiry >= 0.25:
                    self._expire(now)
                    last_expiry = now
        finally:
            self._serving = False

    def stop(self) -> None:
        """Stop accepting; a request whose head has begun may still complete (graceful shutdown),
        within the head deadline and 5 s at most; silent connections are closed."""
        try:
            self._epoll.unregister(self._listen_fd)
        except (OSError, ValueError):
            pass
        until = time.monotonic() + 5
        while self._serving and time.monotonic() < until:
            with self._lock:
                started = any(c.head for c in self._waiting.values())
            if not started:
                break
            time.sleep(0.02)
        self._stop_requested = True
        while self._serving:
            time.sleep(0.01)

    def close(self) -> None:
        with self._lock:
            conns, self._waiting = list(self._waiting.values()), {}
        for conn in conns:
            conn.close()
        self._epoll.close()

    # ------------------------------------------------------------------ the gate

    def _closed_one(self) -> None:
        with self._lock:
            self._open -= 1

    def _accept(self) -> bool:
        """Accept one connection; False when there was none to accept."""
        try:
            sock, addr = self.server.socket.accept()
        except (BlockingIOError, socket.timeout, InterruptedError):
            return False
        except OSError:
            return False                            # the listener was closed (shutdown)
        sock.setblocking(False)
        with self._lock:
            full = self._open >= self.max_connections
            if not full:
                self._open += 1
        if full:
            try:
                sock.send(_reply("503 Service Unavailable",
                                 f"too many open connections (limit {self.max_connections}): try again later"))
            except OSError:
                pass
            sock.close()
            return True
        handshaking = False
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            handshaking = True
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.server.ConnectionClass(self.server, sock, makefile.MakeFile)
        conn.gate = self
        conn.handshaking = handshaking
        if isinstance(addr, tuple) and len(addr) >= 2:
            conn.remote_addr, conn.remote_port = addr[0], addr[1]
        conn.ssl_env = {}
        conn.deadline = time.monotonic() + self.head_timeout
        conn.head_started = True                    # a new connection owes us a head at once
        self._wait(conn)
        return True

    def _wait(self, conn: BerthConnection) -> None:
        sock = conn.socket
        sock.setblocking(False)
        fd = sock.fileno()
        with self._lock:
            self._waiting[fd] = conn
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLRDHUP)

    def _unwait(self, conn: BerthConnection) -> None:
        try:
            fd = conn.socket.fileno()
        except OSError:
            return
        with self._lock:
            self._waiting.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def _drop(self, conn: BerthConnection, reply: bytes = b"") -> None:
        self._unwait(conn)
        if reply:
            try:
                conn.socket.send(reply)
            except (OSError, ssl.SSLError):
                pass
        conn.close()

    def _read(self, conn: BerthConnection) -> None:
        sock = conn.socket
        try:
            if conn.handshaking:
                sock.do_handshake()
                conn.handshaking = False
            while True:
                data = sock.recv(65536)
                if not data:
                    self._drop(conn)                # the client closed
                    return
                conn.head += data
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except (OSError, ssl.SSLError):
            self._drop(conn)
            return
        if not conn.head_started and conn.head:
            conn.head_started = True
            conn.deadline = time.monotonic() + self.head_timeout
        if self._complete(conn):
            self._dispatch(conn, registered=True)
        elif len(conn.head) > MAX_HEAD:
            self._drop(conn, _reply("431 Request Header Fields Too Large",
                                    f"request header too large (limit {MAX_HEAD} bytes)"))

    @staticmethod
    def _complete(conn: BerthConnection) -> bool:
        head = conn.head.lstrip(b"\r\n")
        return b"\r\n\r\n" in head or b"\n\n" in head

    def _dispatch(self, conn: BerthConnection, registered: bool) -> None:
        if registered:
            self._unwait(conn)
        if len(conn.head) > MAX_HEAD and conn.head.find(b"\r\n\r\n") > MAX_HEAD:
            self._drop(conn, _reply("431 Request Header Fields Too Large",
                                    f"request header too large (limit {MAX_HEAD} bytes)"))
            return
        conn.socket.settimeout(self.server.timeout)
        conn.rfile._read_buf, conn.rfile._read_pos = conn.head, 0
        conn.head = b""
        conn.last_used = time.time()
        self.server.process_conn(conn)

    def _expire(self, now: float) -> None:
        with self._lock:
            late = [c for c in self._waiting.values() if c.deadline < now]
        for conn in late:
            if conn.head_started and not conn.handshaking:
                self._drop(conn, _reply("408 Request Timeout", "timed out reading the request head"))
            else:
                self._drop(conn)
