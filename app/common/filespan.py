"""A piece of a response body that is a file's bytes, sent by the server with sendfile(2).

A generator that makes a response body (cp's GET tar) yields FileSpan(fd, count) in place of the
bytes only when the WSGI environ offers `berth.sendfile` (our server); any other server, and the
Flask test client, get bytes. The fd must stay open until the generator is resumed. A file that
shrank after its size was promised is padded with zeros, so the stream keeps its framing."""
from __future__ import annotations

from dataclasses import dataclass

ENVIRON_KEY = "berth.sendfile"


@dataclass(frozen=True)
class FileSpan:
    fd: int
    count: int
