"""Attach: relay between a client's hijacked connection and the container's conmon attach socket.

berth keeps one conmon connection per running container (`AttachHub`) and fans its output out to
every attached client; clients' stdin bytes go in through that same connection. With conmon's `-i`,
any connection reaching EOF closes the container's stdin, so per-client connections would let an
output-only client that leaves close a StdinOnce container's stdin; with the hub only the client
that attached stdin ends it (a half-close of the hub's connection), as in Docker.

conmon's attach socket is SOCK_SEQPACKET. Each packet it sends is `<pipe byte><data>` (2 = stdout,
3 = stderr); bytes we send go to the container's stdin (only when conmon runs with -i or -t). When a
client connection reaches EOF, conmon closes the container's stdin unless it runs with
--leave-stdin-open, which is how Docker's StdinOnce is honoured (docs/conmon-runc-notes.md §6).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
from collections import deque
from typing import Iterable

from app.common.detachkeys import DetachScanner
from app.errors import Conflict

CONMON_STDOUT, CONMON_STDERR = 2, 3
PACKET_MAX = 65536                 # conmon sends at most 8 KiB + 1; a larger buffer never truncates


MAX_PENDING_PACKETS = 2048         # ~16 MiB queued for one client before it is cut off as too slow


class AttachHub:
    """The daemon's single connection to a container's conmon attach socket."""

    def __init__(self, conn: socket.socket, name: str = ""):
        self.conn = conn
        self.closed = threading.Event()
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stdin_closed = False
        threading.Thread(target=self._read, name=f"attach-hub {name}", daemon=True).start()

    def subscribe(self) -> "Subscription":
        sub = Subscription(self)
        with self._lock:
            if self.closed.is_set():
                sub._end()
            else:
                self._subs.add(sub)
        return sub

    def _read(self) -> None:
        try:
            while packet := self.conn.recv(PACKET_MAX):
                with self._lock:
                    subs = list(self._subs)
                for sub in subs:
                    sub._put(packet)
        except OSError:
            pass
        finally:
            with self._lock:
                self.closed.set()
                subs, self._subs = list(self._subs), set()
            for sub in subs:
                sub._end()
            self.conn.close()

    def _unsubscribe(self, sub: "Subscription") -> None:
        with self._lock:
            self._subs.discard(sub)

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self._stdin_closed:
                raise BrokenPipeError("stdin is closed")
            self.conn.sendall(data)

    def close_stdin(self) -> None:
        """EOF on our connection: conmon (-i) closes the container's stdin; output keeps coming."""
        with self._write_lock:
            if not self._stdin_closed:
                self._stdin_closed = True
                try:
                    self.conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.conn.shutdown(socket.SHUT_RDWR)     # the reader sees EOF and ends every subscription
        except OSError:
            pass


class Subscription:
    """One client's view of a hub, shaped like the conmon socket `relay` used to read directly."""

    def __init__(self, hub: AttachHub):
        self.hub = hub
        self._packets: deque[bytes | None] = deque()
        self._ready = threading.Condition()

    def _put(self, packet: bytes) -> None:
        with self._ready:
            if len(self._packets) >= MAX_PENDING_PACKETS:
                self._packets.clear()                 # a client this far behind is dropped
                self._packets.append(None)
                self.hub._unsubscribe(self)
            else:
                self._packets.append(packet)
            self._ready.notify()

    def _end(self) -> None:
        with self._ready:
            self._packets.append(None)
            self._ready.notify()

    def recv(self, _size: int = PACKET_MAX) -> bytes:
        with self._ready:
            while not self._packets:
                self._ready.wait()
            packet = self._packets[0]
            if packet is None:
                return b""                            # stays at the end
            self._packets.popleft()
            return packet

    def sendall(self, data: bytes) -> None:
        self.hub.write(data)

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_WR:
            self.hub.close_stdin()
        else:
            self.close()

    def close(self) -> None:
        self.hub._unsubscribe(self)
        self._end()


def frame(stream: int, data: bytes) -> bytes:
    """Docker's stdcopy framing: stream id, three zero bytes, big-endian length."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def relay(conmon: "Subscription | socket.socket", client: socket.socket, client_reader, *, tty: bool, stdout: bool,
          stderr: bool, stdin: bool, stdin_once: bool, detach_keys: bytes,
          output: Iterable[bytes] | None = None, detached: threading.Event | None = None) -> bool:
    """Copy output to the client until the container's streams end (or the client goes away), and the
    client's bytes to stdin. Returns True when the client detached with the detach keys.

    `output`, when given, replaces conmon's live packets as the source of (already framed) output:
    attach with logs=1 follows the log file so that history and live output neither overlap nor
    leave a gap; conmon's connection then carries only stdin."""
    detached = detached or threading.Event()

    def pump_stdin():
        # moby looks for detach keys only on a TTY: piped binary input must reach the process whole
        scanner = DetachScanner(detach_keys) if tty else None
        try:
            while True:
                data = client_reader.read1(PACKET_MAX)
                if not data:
                    if stdin_once and not tty:              # moby: CloseStdin && !TTY
                        conmon.shutdown(socket.SHUT_WR)     # conmon closes the container's stdin
                    return
                data, hit = scanner.feed(data) if scanner else (data, False)
                if data:
                    conmon.sendall(data)
                if hit:
                    detached.set()
                    conmon.shutdown(socket.SHUT_RDWR)       # ends the output loop below
                    return
        except (OSError, ValueError):
            return

    def discard_packets():           # conmon's live copy is not used; keep its socket from filling up
        try:
            while conmon.recv(PACKET_MAX):
                pass
        except OSError:
            return

    reader = threading.Thread(target=pump_stdin, name="attach-stdin", daemon=True) if stdin else None
    if reader:
        reader.start()
    if output is not None:
        threading.Thread(target=discard_packets, name="attach-discard", daemon=True).start()
    try:
        for data in output or ():
            client.sendall(data)
        while output is None:
            packet = conmon.recv(PACKET_MAX)
            if not packet:
                break
            pipe, data = packet[0], packet[1:]
            if not data or (pipe == CONMON_STDOUT and not stdout) or (pipe == CONMON_STDERR and not stderr):
                continue
            if tty:
                client.sendall(data)
            else:
                client.sendall(frame(1 if pipe == CONMON_STDOUT else 2, data))
    except OSError:
        pass                                   # the client hung up, or we detached
    finally:
        for sock in (client, conmon):
            try:
                sock.shutdown(socket.SHUT_RDWR)   # wakes the stdin reader; queued output is still sent
            except OSError:
                pass
        if reader:
            reader.join(5)
        conmon.close()
    return detached.is_set()


class _AttachWaiter:
    """An attach that arrived before the container started (`docker run` attaches, then starts)."""

    def __init__(self):
        self.ready = threading.Event()
        self.conn = None        # conmon attach connection, or None when the container went away


class AttachMixin:
    """Attach reservations and the per-container conmon attach hub (mixed into the service)."""

    def _hub(self, cid: str, bundle: str) -> AttachHub:
        """The container's attach hub (one conmon connection), made on first use (caller holds the
        container's lock, so only one is made; the connect happens outside the tables lock)."""
        hub = self._hubs.get(cid)
        if hub is None or hub.closed.is_set():
            hub = AttachHub(self.monitor.connect_attach(cid, bundle), cid[:12])
            with self._tables_lock:
                self._hubs[cid] = hub
        return hub

    def reserve_attach(self, cid: str) -> _AttachWaiter:
        """Take a place on the container's attach hub: subscribed now if it runs, else queued for its
        next start. Done before the client hears that its attach is in place, because the next thing
        a client like `docker run` does is start the container, and output must not run ahead."""
        waiter = _AttachWaiter()
        with self._locked_row(cid) as row:
            if self._closing.is_set():
                waiter.ready.set()
            elif row.is_live:
                try:
                    waiter.conn = self._hub(cid, self.bundle(cid)).subscribe()
                except OSError:     # it exited a moment ago; nothing more will come
                    pass
                waiter.ready.set()
            else:
                with self._tables_lock:
                    self._attach_waiters.setdefault(cid, []).append(waiter)
        return waiter

    def attach_connection(self, waiter: _AttachWaiter, client_gone) -> "Subscription | None":
        """The reserved subscription, once the container runs. None if the container is removed first,
        its start fails, the daemon stops, or `client_gone()` says the client hung up while waiting.
        The caller ends every reservation with cancel_attach, whether or not it got this far."""
        while not waiter.ready.wait(0.2):
            if self._closing.is_set() or client_gone():
                break
        return waiter.conn

    def cancel_attach(self, cid: str, waiter: _AttachWaiter) -> None:
        """Stop waiting for a start (the attach ended or never got going)."""
        with self._tables_lock:
            waiting = self._attach_waiters.get(cid, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._attach_waiters.pop(cid, None)

    def _connect_waiting_attaches(self, cid: str, bundle: str) -> None:
        with self._tables_lock:
            self._hubs.pop(cid, None)           # a previous run's hub has ended with that run
            waiters = self._attach_waiters.pop(cid, [])
        for waiter in waiters:
            try:
                waiter.conn = self._hub(cid, bundle).subscribe()
            except OSError:
                logging.getLogger("berth").exception("attach %s", cid[:12])
            waiter.ready.set()

    def resize(self, ref: str, height: int, width: int) -> None:
        row = self.resolve(ref)
        if not row.is_live:
            raise Conflict(f"container {row.id} is not running")
        if not row.config.get("Tty"):
            return                          # Docker accepts a resize of a non-tty container and ignores it
        try:
            self.monitor.resize(row.id, self.bundle(row.id), height, width)
        except OSError as err:
            raise Conflict(f"container {row.id} is not running") from err

    def record_attach(self, cid: str, action: str) -> None:
        """`attach` / `detach` events, in Docker's shape."""
        row = self.get(cid)
        if row is not None:
            self._note(row, action)
