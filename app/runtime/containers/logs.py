"""Container logs: conmon's k8s-file records turned into what `docker logs` serves.

conmon writes `<RFC3339Nano> <stdout|stderr> <F|P> <bytes>` per read, where P marks a piece of a line
still missing its newline. Docker's json-file keeps one entry per line, so pieces are joined per stream
into messages here; `tail`, `since` and `until` count and filter those messages, as Docker does.
"""
from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator

from app.common.timeparse import rfc3339_nano
from app.runtime.host.conmon import parse_log_line

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


@dataclass
class LogMessage:
    time_ns: int
    stream: str
    data: bytes          # ends with b"\n" unless the container never finished the line


def parse_time_ns(text: str) -> int:
    """conmon's `2026-11-27T19:32:45.848546768+00:00` → Unix nanoseconds (nanosecond exact)."""
    head, dot, rest = text.partition(".")
    if not dot:                                # no fraction: the zone follows the seconds
        head, rest = text[:19], text[19:]
    digits = ""
    for i, ch in enumerate(rest):
        if not ch.isdigit():
            break
        digits += ch
    zone = rest[len(digits):]
    if zone in ("", "Z"):
        zone = "+00:00"
    seconds = int(datetime.fromisoformat(head + zone).timestamp())
    return seconds * 1_000_000_000 + int((digits + "000000000")[:9] or 0)


def messages(lines: Iterable[bytes]) -> Iterator[LogMessage]:
    """Join partial records per stream into whole messages, in the order their lines completed."""
    pending: dict[str, LogMessage] = {}
    for line in lines:
        record = parse_log_line(line)
        if record is None:
            continue
        stamp, stream, partial, data = record
        msg = pending.pop(stream, None)
        if msg is None:
            msg = LogMessage(parse_time_ns(stamp), stream, b"")
        msg.data += data
        if partial:
            pending[stream] = msg
        else:
            msg.data += b"\n"
            yield msg
    yield from sorted(pending.values(), key=lambda m: m.time_ns)   # lines the container never ended


def select(msgs: Iterable[LogMessage], since_ns: int = 0, until_ns: int = 0, tail: int = -1,
           streams: tuple[str, ...] = ("stdout", "stderr")) -> list[LogMessage]:
    """Docker's filters: wanted streams, time window (both ends inclusive), then the last `tail`."""
    chosen = (m for m in msgs
              if m.stream in streams and m.time_ns >= since_ns and (not until_ns or m.time_ns <= until_ns))
    if tail >= 0:
        return list(deque(chosen, maxlen=tail)) if tail else []
    return list(chosen)


def render(msg: LogMessage, timestamps: bool, tty: bool) -> bytes:
    """One message on the wire: raw for a TTY container, else stdcopy's 8-byte header + payload."""
    data = msg.data
    if timestamps:
        data = rfc3339_nano(msg.time_ns).encode() + b" " + data
    if tty:
        return data
    return struct.pack(">BxxxL", STREAM_IDS[msg.stream], len(data)) + data


def follow(fh, still_running, streams: tuple[str, ...], since_ns: int = 0, until_ns: int = 0,
           timestamps: bool = False, tty: bool = False, poll: float = 0.1) -> Iterator[bytes]:
    """What conmon appends after the history was served, until the container stopped (as seen before
    the last read, so nothing written at the end is missed). Only whole records are parsed."""
    rest = b""
    while True:
        running = still_running()
        data = rest + fh.read()
        cut = data.rfind(b"\n") + 1
        whole, rest = data[:cut], data[cut:]
        if whole:
            for msg in select(messages(whole.splitlines(keepends=True)), since_ns, until_ns, -1, streams):
                yield render(msg, timestamps, tty)
        if not running:
            return
        time.sleep(poll)
