"""Reading tar streams: a strict header parser and a copy-free path for member data (safetar's input)."""
from __future__ import annotations

import tarfile
from typing import Iterator

from app.runtime.host.errors import ArchiveError

CHUNK = 1 << 20
MAX_META_HEADER = 1 << 20
_META_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
               tarfile.GNUTYPE_LONGLINK}


class StrictTarInfo(tarfile.TarInfo):
    """tarfile treats a truncated or garbled header after the first member as the end of the archive;
    refuse that instead, and refuse extended headers too big to hold in memory."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        obj = super().frombuf(buf, encoding, errors)
        if obj.type in _META_TYPES and obj.size > MAX_META_HEADER:
            raise tarfile.InvalidHeaderError(f"extended header of {obj.size} bytes is too large")
        if obj.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveError(f'invalid tar entry "{obj.name}": sparse files are not supported')
        return obj

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except tarfile.EOFHeaderError:
            raise
        except tarfile.EmptyHeaderError:
            if tf.offset == 0:
                raise tarfile.EOFHeaderError("empty archive") from None
            raise tarfile.ReadError(f"unexpected end of data at offset {tf.offset} "
                                    "(archive truncated: no end-of-archive marker)") from None
        except tarfile.HeaderError as e:
            raise tarfile.ReadError(f"{e} at offset {tf.offset}") from None


def plain_stream(tf: tarfile.TarFile):
    """tarfile's stream-mode reader if it has the shape this module knows, else None."""
    st = tf.fileobj
    if (type(st).__name__ == "_Stream" and getattr(st, "comptype", None) == "tar"
            and isinstance(getattr(st, "buf", None), bytes) and isinstance(getattr(st, "pos", None), int)
            and hasattr(getattr(st, "fileobj", None), "read")):
        return st
    return None


def member_chunks(tf: tarfile.TarFile, ti: tarfile.TarInfo, plain=None) -> Iterator[bytes]:
    """A regular member's data in chunks of at most CHUNK bytes; stops early if the archive ends.
    For plain members the bytes come from tarfile's read-ahead buffer, then straight from the source,
    keeping tarfile's position in step (tf.extractfile() costs three extra copies of every byte)."""
    remaining = ti.size
    if plain is None:
        src = tf.extractfile(ti)
        while remaining > 0:
            buf = src.read(min(CHUNK, remaining))
            if not buf:
                return
            remaining -= len(buf)
            yield buf
        return
    if plain.buf:
        head = plain.buf[:remaining]
        plain.buf = plain.buf[len(head):]
        plain.pos += len(head)
        remaining -= len(head)
        yield head
    raw = plain.fileobj
    while remaining > 0:
        buf = raw.read(min(CHUNK, remaining))
        if not buf:
            return
        plain.pos += len(buf)
        remaining -= len(buf)
        yield buf


def mtime_ns(mtime) -> int:
    return mtime * 1_000_000_000 if isinstance(mtime, int) else round(mtime * 1e9)
