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

from app.common.detachkeys import DetachScanner, parse_detach_keys  # noqa: F401 (re-exported)

CONMON_STDOUT, CONMON_STDERR = 2, 3
PACKET_MAX = 65536                 # conmon sends at most 8 KiB + 1; a larger buffer never truncates


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
        # moby looks for detach keys only on a TTY: piped binary input must reach the process whole
        scanner = DetachScanner(detach_keys) if tty else None
        try:
            while True:
                data = client_reader.read1(PACKET_MAX)
                if not data:
                    if stdin_once:
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
