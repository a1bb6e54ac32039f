"""Attach: relay between a client's hijacked connection and the container's conmon attach socket.

conmon's attach socket is SOCK_SEQPACKET. Each packet it sends is `<pipe byte><data>` (2 = stdout,
3 = stderr); bytes we send go to the container's stdin (only when conmon runs with -i or -t). When a
client connection reaches EOF, conmon closes the container's stdin unless it runs with
--leave-stdin-open, which is how Docker's StdinOnce is honoured (docs/conmon-runc-notes.md §6).
"""
from __future__ import annotations

import socket
import struct
import threading
from typing import Iterable

from app.errors import InvalidParameter

CONMON_STDOUT, CONMON_STDERR = 2, 3
PACKET_MAX = 65536                 # conmon sends at most 8 KiB + 1; a larger buffer never truncates
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's detach-key syntax: comma-separated `ctrl-<a-z@[\\]^_>` or single characters."""
    spec = spec or DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        low = key.lower()
        if low.startswith("ctrl-") and len(key) == 6:
            ch = low[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            if ch in _CTRL_SPECIALS:
                out.append(_CTRL_SPECIALS[ch])
                continue
        elif len(key) == 1:
            out.append(ord(key))
            continue
        raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in a stdin stream split across reads; held-back bytes of a partial
    match are released when the match fails, so nothing the user typed is lost."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns (bytes to forward, detached)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held                 # a broken partial match is the user's input after all
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


def frame(stream: int, data: bytes) -> bytes:
    """Docker's stdcopy framing: stream id, three zero bytes, big-endian length."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def relay(conmon: socket.socket, client: socket.socket, client_reader, *, tty: bool, stdout: bool,
          stderr: bool, stdin: bool, stdin_once: bool, detach_keys: bytes,
          output: Iterable[bytes] | None = None, detached: threading.Event | None = None) -> bool:
    """Copy output to the client until the container's streams end (or the client goes away), and the
    client's bytes to stdin. Returns True when the client detached with the detach keys.

    `output`, when given, replaces conmon's live packets as the source of (already framed) output:
    attach with logs=1 follows the log file so that history and live output neither overlap nor
    leave a gap; conmon's connection then carries only stdin."""
    detached = detached or threading.Event()

    def pump_stdin():
        scanner = DetachScanner(detach_keys)
        try:
            while True:
                data = client_reader.read1(PACKET_MAX)
                if not data:
                    if stdin_once:
                        conmon.shutdown(socket.SHUT_WR)     # conmon closes the container's stdin
                    return
                data, hit = scanner.feed(data)
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
