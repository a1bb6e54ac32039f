"""Layer compression: detect gzip, bzip2 or xz by magic bytes and decompress while streaming."""
from __future__ import annotations

import bz2
import lzma
import zlib
from typing import BinaryIO

from app.runtime.images.layers import CHUNK, LayerError

_MAGIC_LEN = 6
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAGICS = (("gzip", b"\x1f\x8b"), ("bzip2", b"BZh"), ("xz", b"\xfd7zXZ\x00"))
_MAGIC_OF = dict(_MAGICS)
_DECOMPRESS_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)


class _Prefixed:
    """Non-seekable reader returning already-peeked `head` bytes, then the rest of `raw`."""

    def __init__(self, raw, head: bytes):
        self._raw = raw
        self._head = head

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        head = self._head
        if n is None or n < 0:
            self._head = b""
            rest = self._raw.read()
            return head + rest if rest else head
        if not head:
            return self._raw.read(n)
        if n <= len(head):
            self._head = head[n:]
            return head[:n]
        self._head = b""
        rest = self._raw.read(n - len(head))
        return head + rest if rest else head

    def close(self) -> None:
        pass


class _Decompressed:
    """Non-seekable reader of the uncompressed bytes of a gzip/bzip2/xz stream (multi-member aware).

    Decompression errors, truncation and trailing garbage raise LayerError."""

    def __init__(self, raw, kind: str):
        self.kind = kind
        self._raw = raw
        self._magic = _MAGIC_OF[kind]
        self._pending = b""        # compressed input not yet given to the decompressor
        self._raw_eof = False
        self._between = False      # a member ended; expecting another member, zero padding or EOF
        self._done = False
        self._d = self._new()

    def _new(self):
        if self.kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def _fill(self) -> None:
        more = self._raw.read(CHUNK)
        if more:
            self._pending += more
        else:
            self._raw_eof = True

    def _fail(self, why) -> LayerError:
        return LayerError(f"invalid {self.kind}-compressed data: {why}")

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                part = self.read(CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if n == 0:
            return b""
        while not self._done:
            if self._between:
                self._pending = self._pending.lstrip(b"\0")
                if len(self._pending) < len(self._magic) and not self._raw_eof:
                    self._fill()
                    continue
                if not self._pending:
                    self._done = True
                    break
                if not self._pending.startswith(self._magic):
                    raise self._fail("trailing garbage after the compressed stream")
                self._d = self._new()
                self._between = False
            d = self._d
            if self.kind == "gzip":
                if not self._pending and not self._raw_eof:
                    self._fill()
                try:
                    out = d.decompress(self._pending, n)
                except _DECOMPRESS_ERRORS as e:
                    raise self._fail(e) from None
                self._pending = d.unconsumed_tail
                if d.eof:
                    self._pending = d.unused_data
                    self._between = True
                elif not out and not self._pending and self._raw_eof:
                    raise self._fail("unexpected end of data (truncated?)")
            else:
                if d.needs_input and not self._pending and not self._raw_eof:
                    self._fill()
                data, self._pending = self._pending, b""
                try:
                    out = d.decompress(data, n)
                except _DECOMPRESS_ERRORS as e:
                    raise self._fail(e) from None
                if d.eof:
                    self._pending = d.unused_data
                    self._between = True
                elif not out and d.needs_input and self._raw_eof:
                    raise self._fail("unexpected end of data (truncated?)")
            if out:
                return out
        return b""


def open_decompressed(fileobj) -> tuple[BinaryIO, str]:
    """Detect compression by magic bytes and return (stream of uncompressed bytes, kind) where kind is
    one of 'none', 'gzip', 'bzip2', 'xz'. Works on non-seekable streams (only .read(n) is used)."""
    head = b""
    while len(head) < _MAGIC_LEN:
        more = fileobj.read(_MAGIC_LEN - len(head))
        if not more:
            break
        head += more
    if head.startswith(_ZSTD_MAGIC):
        raise LayerError("zstd-compressed layers are not supported")
    raw = _Prefixed(fileobj, head)
    for kind, magic in _MAGICS:
        if head.startswith(magic):
            return _Decompressed(raw, kind), kind
    return raw, "none"
