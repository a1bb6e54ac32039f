"""Image layers on disk: decompression, digesting, tar extraction into overlayfs lower dirs, and tar
creation from overlay diffs.

Layer tars carry deletions as AUFS/OCI whiteout files ('.wh.NAME', '.wh..wh..opq'); on disk, overlayfs
wants character devices 0/0 and the 'trusted.overlay.opaque' xattr. extract_layer translates one way,
write_layer_tar the other.

Typical import path (one pass over the bytes):

    stream, kind = open_decompressed(body)
    reader = DigestReader(stream, copy_to=blob_file)
    size = extract_layer(reader, layer_dir)
    reader.drain()
    diff_id = reader.digest()
"""
from __future__ import annotations

import bz2
import errno
import hashlib
import lzma
import os
import stat
import tarfile
import zlib
from typing import BinaryIO

from app.runtime.host import safetar

CHUNK = 1 << 20                 # copy unit for file contents and raw reads

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_SKIPPED_XATTRS = ("security.selinux",)          # host-specific label, never exported


LayerError = safetar.ArchiveError     # bad layer content; the message is shown to the user (HTTP 400)


# ---------------------------------------------------------------------------------------------------
# decompression

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


# ---------------------------------------------------------------------------------------------------
# digesting

class DigestReader:
    """Pass-through reader: every byte read updates a sha256 and is optionally copied to `copy_to`."""

    def __init__(self, stream, copy_to: BinaryIO | None = None):
        self._stream = stream
        self._copy = copy_to
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def _account(self, data) -> None:
        self._hash.update(data)
        self.size += len(data)
        if self._copy is not None:
            self._copy.write(data)

    def read(self, n: int | None = -1) -> bytes:
        data = self._stream.read() if n is None or n < 0 else self._stream.read(n)
        if data:
            self._account(data)
        return data

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def drain(self) -> int:
        """Read (and digest/copy) everything left in the stream; returns the number of bytes."""
        total = 0
        while True:
            data = self.read(CHUNK)
            if not data:
                return total
            total += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------
# extraction (through the host's one safe extractor)

def _overlay_whiteout(target: safetar.Target, parent_fd: int, base: str, ti: tarfile.TarInfo) -> bool:
    """`.wh..wh..opq` -> the opaque xattr on its directory; `.wh.NAME` -> a 0/0 char device NAME."""
    if base == WHITEOUT_OPAQUE:
        os.setxattr(parent_fd, OPAQUE_XATTR, b"y")
        return True
    if base.startswith(WHITEOUT_META_PREFIX):
        return True                    # other AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): ignored
    hidden = base[len(WHITEOUT_PREFIX):]
    if hidden in ("", ".", ".."):
        raise LayerError(f'invalid tar entry "{ti.name}": invalid whiteout name')
    target.remove(parent_fd, hidden)
    os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
    os.chown(hidden, ti.uid, ti.gid, dir_fd=parent_fd, follow_symlinks=False)
    return True


def extract_layer(stream, dest: str, limits: safetar.Limits | None = None) -> int:
    """Extract the uncompressed tar `stream` (read sequentially, never seeked) into the existing empty
    directory `dest` as one overlayfs lower layer; returns the total bytes of regular-file content.

    Whiteouts become overlayfs whiteouts. Raises LayerError for unsafe or corrupt content (and
    safetar.ArchiveTooLarge past `limits`); dest may then hold a partial extraction that the caller
    should remove."""
    if not stat.S_ISDIR(os.lstat(dest).st_mode):
        raise NotADirectoryError(dest)
    return safetar.extract(stream, dest, limits=limits, on_whiteout=_overlay_whiteout, what="layer")


# ---------------------------------------------------------------------------------------------------
# tar creation

def _read_xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTR_PREFIX) or name in _SKIPPED_XATTRS:
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
            raise
        out[_PAX_XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class _TarWriter:
    def __init__(self, out: BinaryIO):
        self.out = out
        self.written = 0
        self._buf = bytearray(CHUNK)

    def _write(self, data) -> None:
        self.out.write(data)
        self.written += len(data)

    def header(self, ti: tarfile.TarInfo) -> None:
        ti.uname = ti.gname = ""
        self._write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def data(self, path: str, size: int) -> None:
        """Write exactly `size` bytes of the file (zero-filled if it shrank) plus block padding."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with open(fd, "rb", buffering=0, closefd=False) as f:
                view = memoryview(self._buf)
                remaining = size
                while remaining > 0:
                    n = f.readinto(view[:min(CHUNK, remaining)])
                    if not n:
                        break
                    self._write(view[:n])
                    remaining -= n
        finally:
            os.close(fd)
        while remaining > 0:
            n = min(CHUNK, remaining)
            self._write(bytes(n))
            remaining -= n
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._write(bytes(pad))

    def close(self) -> None:
        self._write(bytes(2 * tarfile.BLOCKSIZE))


def _sorted_children(path: str, rel: str):
    """[(output basename, relative path, absolute path, lstat)] sorted by output name (bytewise)."""
    out = []
    for name in os.listdir(path):
        p = os.path.join(path, name)
        st = os.lstat(p)
        oname = name
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            oname = WHITEOUT_PREFIX + name
        out.append((os.fsencode(oname), oname, rel + name, p, st))
    out.sort(key=lambda t: t[0])
    return [t[1:] for t in out]


def write_layer_tar(src: str, out: BinaryIO) -> int:
    """Write a deterministic PAX tar of directory `src` (an overlay upperdir or a layer diff) to `out`,
    translating overlayfs whiteouts back to '.wh.' files. Returns the number of bytes written."""
    src = os.path.abspath(src)
    if not stat.S_ISDIR(os.lstat(src).st_mode):
        raise NotADirectoryError(src)
    w = _TarWriter(out)
    links: dict[tuple[int, int], str] = {}
    if _is_opaque(src):
        st = os.lstat(src)
        _opaque_marker(w, "", st)
    stack = [iter(_sorted_children(src, ""))]
    while stack:
        try:
            oname, rel, path, st = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        mode = st.st_mode
        parent = rel[:len(rel) - len(os.path.basename(rel))]
        ti = tarfile.TarInfo(parent + oname)
        ti.mode = stat.S_IMODE(mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.mtime = st.st_mtime_ns // 1_000_000_000
        if stat.S_ISCHR(mode) and st.st_rdev == 0:           # overlay whiteout
            ti.type, ti.mode = tarfile.REGTYPE, 0o600
            w.header(ti)
            continue
        if stat.S_ISSOCK(mode):
            continue                                          # tar cannot carry sockets
        ti.pax_headers = _read_xattrs(path)
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
                w.header(ti)
                continue
            if st.st_nlink > 1:
                links[key] = rel
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            w.header(ti)
            w.data(path, st.st_size)
        elif stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            w.header(ti)
            if _is_opaque(path):
                _opaque_marker(w, rel + "/", st)
            stack.append(iter(_sorted_children(path, rel + "/")))
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
            w.header(ti)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
            w.header(ti)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            w.header(ti)
    w.close()
    return w.written


def _opaque_marker(w: _TarWriter, prefix: str, st: os.stat_result) -> None:
    ti = tarfile.TarInfo(prefix + WHITEOUT_OPAQUE)
    ti.type = tarfile.REGTYPE
    ti.mode = stat.S_IMODE(st.st_mode) & 0o777
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = st.st_mtime_ns // 1_000_000_000
    w.header(ti)


# ---------------------------------------------------------------------------------------------------

def dir_size(path: str) -> int:
    """Sum of st_size of the regular files under path (hardlinked inodes counted once), not following
    symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if st.st_nlink > 1:
                            key = (st.st_dev, st.st_ino)
                            if key in seen:
                                continue
                            seen.add(key)
                        total += st.st_size
                except FileNotFoundError:
                    continue
    return total
