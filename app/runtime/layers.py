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
import posixpath
import shutil
import stat
import tarfile
import zlib
from typing import BinaryIO, Iterator

CHUNK = 1 << 20                 # copy unit for file contents and raw reads
TAR_BUFSIZE = 64 << 10          # tarfile's read-ahead in stream mode

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_SKIPPED_XATTRS = ("security.selinux",)          # host-specific label, never exported
_IGNORABLE_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES,
                           errno.EINVAL, errno.ERANGE, errno.E2BIG}
# errors from file-system calls that are caused by the archive's content rather than by the host
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CONTENT_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EMLINK,
                   errno.ELOOP, errno.EINVAL, errno.ENOTEMPTY, errno.ENOENT}


class LayerError(Exception):
    """Bad layer content; message is shown to the user (HTTP 400)."""


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
# extraction

MAX_META_HEADER = 1 << 20
_META_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
               tarfile.GNUTYPE_LONGLINK}


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile silently treats a truncated or garbled header after the first member as the end of the
    archive; refuse that instead. A stream that ends exactly at a header boundary without the
    end-of-archive blocks is only accepted when it is completely empty."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        obj = super().frombuf(buf, encoding, errors)
        if obj.type in _META_TYPES and obj.size > MAX_META_HEADER:
            # tarfile reads these into memory whole; a huge one would exhaust memory
            raise tarfile.InvalidHeaderError(f"extended header of {obj.size} bytes is too large")
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


def _plain_stream(tf: tarfile.TarFile):
    """tarfile's stream-mode reader if it has the shape this module knows (uncompressed, with a
    read-ahead buffer `buf`, a position `pos` and the source `fileobj`), else None."""
    st = tf.fileobj
    if (type(st).__name__ == "_Stream" and getattr(st, "comptype", None) == "tar"
            and isinstance(getattr(st, "buf", None), bytes) and isinstance(getattr(st, "pos", None), int)
            and hasattr(getattr(st, "fileobj", None), "read")):
        return st
    return None


def _member_chunks(tf: tarfile.TarFile, ti: tarfile.TarInfo, plain=None) -> Iterator[bytes]:
    """The data of a regular member in chunks of at most CHUNK bytes; stops early if the archive ends.

    Going through tf.extractfile() costs three extra copies of every byte (tarfile's read-ahead join
    and slice, then BufferedReader); for plain members the bytes are taken from tarfile's read-ahead
    buffer and then straight from the source stream, keeping tarfile's position in step."""
    remaining = ti.size
    st = plain if ti.sparse is None else None
    if st is None:
        src = tf.extractfile(ti)
        while remaining > 0:
            buf = src.read(min(CHUNK, remaining))
            if not buf:
                return
            remaining -= len(buf)
            yield buf
        return
    if st.buf:
        head = st.buf[:remaining]
        st.buf = st.buf[len(head):]
        st.pos += len(head)
        remaining -= len(head)
        yield head
    raw = st.fileobj
    while remaining > 0:
        buf = raw.read(min(CHUNK, remaining))
        if not buf:
            return
        st.pos += len(buf)
        remaining -= len(buf)
        yield buf


def _mtime_ns(mtime) -> int:
    if isinstance(mtime, int):
        return mtime * 1_000_000_000
    return round(mtime * 1e9)


class _Extractor:
    def __init__(self, dest: str):
        self.dest = dest
        self.real_dirs: set[str] = {""}          # relative paths verified to be real directories
        self.dir_times: list[tuple[str, int]] = []
        self.root: tarfile.TarInfo | None = None
        self.total = 0
        self.plain = None              # tarfile's stream when the fast data path applies

    # -- paths --------------------------------------------------------------------------------------

    @staticmethod
    def _split(name: str, entry: str, what: str = "path") -> list[str]:
        if "\0" in name:
            raise LayerError(f'invalid tar entry "{entry}": {what} contains a NUL byte')
        if name.startswith("/"):
            raise LayerError(f'invalid tar entry "{entry}": absolute {what} "{name}" is not allowed')
        norm = posixpath.normpath(name)
        if norm == ".":
            return []
        parts = norm.split("/")
        if parts[0] == "..":
            raise LayerError(f'invalid tar entry "{entry}": {what} "{name}" escapes the layer')
        return parts

    def _parent(self, entry: str, parts: list[str], create: bool = True) -> str:
        """Make sure every parent component of parts is a real directory inside dest (creating missing
        ones if `create`) and return the absolute path of parts. Symlinks are never followed."""
        cur = self.dest
        rel = ""
        for comp in parts[:-1]:
            rel = rel + "/" + comp if rel else comp
            cur = cur + "/" + comp
            if rel in self.real_dirs:
                continue
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                if not create:
                    raise LayerError(f'invalid tar entry "{entry}": "{rel}" does not exist in the layer') \
                        from None
                os.mkdir(cur, 0o755)
                os.chmod(cur, 0o755)
                self.real_dirs.add(rel)
                continue
            if stat.S_ISDIR(st.st_mode):
                self.real_dirs.add(rel)
            elif stat.S_ISLNK(st.st_mode):
                raise LayerError(f'invalid tar entry "{entry}": path escapes the layer through '
                                 f'symlink "{rel}"')
            else:
                raise LayerError(f'invalid tar entry "{entry}": parent "{rel}" is not a directory')
        return cur + "/" + parts[-1] if parts else cur

    def _create(self, path: str, make):
        """Run make() (which creates path exclusively, never following a symlink at path); whatever
        already exists at path is removed first. Avoids an lstat per entry in the common case."""
        try:
            return make()
        except FileExistsError:
            self._remove(path)
            return make()

    def _remove(self, path: str) -> os.stat_result | None:
        """Remove whatever is at path (never following symlinks); returns its old lstat or None."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            self.real_dirs = {""}      # cached directories below path are gone
        else:
            os.unlink(path)
        return st

    # -- metadata -----------------------------------------------------------------------------------

    @staticmethod
    def _xattrs(ti: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
        for key, value in ti.pax_headers.items():
            if key.startswith(_PAX_XATTR_PREFIX):
                name = key[len(_PAX_XATTR_PREFIX):]
                if not name or name.startswith(_OVERLAY_XATTR_PREFIX):
                    continue        # overlay's own metadata must only come from whiteout entries
                yield name, value.encode("utf-8", "surrogateescape")

    def _set_xattrs(self, target, ti: tarfile.TarInfo, follow: bool = True) -> None:
        if not ti.pax_headers:
            return
        for name, value in self._xattrs(ti):
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in _IGNORABLE_XATTR_ERRNOS:
                    raise

    @staticmethod
    def _utime(target, ti: tarfile.TarInfo, follow: bool = True) -> None:
        ns = _mtime_ns(ti.mtime)
        try:
            os.utime(target, ns=(ns, ns), follow_symlinks=follow)
        except (OverflowError, ValueError):
            pass

    # -- entries ------------------------------------------------------------------------------------

    def entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        name = ti.name
        parts = self._split(name, name)
        if not parts:
            if not ti.isdir():
                raise LayerError(f'invalid tar entry "{name}": the layer root must be a directory')
            self.root = ti
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(ti, name, parts, base)
            return
        if ti.ischr() or ti.isblk():
            raise LayerError(f'invalid tar entry "{name}": device nodes are not allowed in layers')
        if not (ti.isreg() or ti.isdir() or ti.issym() or ti.islnk() or ti.isfifo()):
            raise LayerError(f'invalid tar entry "{name}": unsupported entry type {ti.type!r}')
        if ti.islnk():
            self._hardlink(ti, name, parts)
            return
        if ti.issym() and not ti.linkname:
            raise LayerError(f'invalid tar entry "{name}": symlink with an empty target')
        path = self._parent(name, parts)
        mode = ti.mode & 0o7777
        if ti.isdir():
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is None or not stat.S_ISDIR(st.st_mode):
                if st is not None:
                    os.unlink(path)
                os.mkdir(path, 0o700)
            self.real_dirs.add("/".join(parts))
            os.lchown(path, ti.uid, ti.gid)
            os.chmod(path, mode)
            self._set_xattrs(path, ti)
            self.dir_times.append((path, _mtime_ns(ti.mtime)))
            return
        if ti.isreg():
            fd = self._create(path, lambda: os.open(path, _CREATE_FLAGS, 0o600))
            try:
                if ti.size:
                    self._copy(tf, ti, fd)
                os.fchown(fd, ti.uid, ti.gid)
                os.fchmod(fd, mode)
                self._set_xattrs(fd, ti)
                self._utime(fd, ti)
            finally:
                os.close(fd)
            self.total += ti.size
        elif ti.issym():
            self._create(path, lambda: os.symlink(ti.linkname, path))
            os.lchown(path, ti.uid, ti.gid)
            self._set_xattrs(path, ti, follow=False)
            self._utime(path, ti, follow=False)
        else:  # FIFO
            self._create(path, lambda: os.mkfifo(path, 0o600))
            os.lchown(path, ti.uid, ti.gid)
            os.chmod(path, mode)
            self._set_xattrs(path, ti)
            self._utime(path, ti)

    def _copy(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, fd: int) -> None:
        remaining = ti.size
        write = os.write
        for buf in _member_chunks(tf, ti, self.plain):
            remaining -= len(buf)
            view = memoryview(buf)
            while view:
                view = view[write(fd, view):]
        if remaining:
            raise tarfile.ReadError(f'unexpected end of data in "{ti.name}"')

    def _whiteout(self, ti: tarfile.TarInfo, name: str, parts: list[str], base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            dirpath = os.path.dirname(self._parent(name, parts))
            os.setxattr(dirpath, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return                     # other AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): ignored
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise LayerError(f'invalid tar entry "{name}": invalid whiteout name')
        path = self._parent(name, parts[:-1] + [hidden])
        self._remove(path)
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        os.lchown(path, ti.uid, ti.gid)

    def _hardlink(self, ti: tarfile.TarInfo, name: str, parts: list[str]) -> None:
        lparts = self._split(ti.linkname, name, "hardlink target")
        if not lparts:
            raise LayerError(f'invalid tar entry "{name}": hardlink to the layer root')
        if lparts == parts:
            raise LayerError(f'invalid tar entry "{name}": hardlink to itself')
        target = self._parent(name, lparts, create=False)
        try:
            tst = os.lstat(target)
        except FileNotFoundError:
            raise LayerError(f'invalid tar entry "{name}": hardlink target "{ti.linkname}" '
                             'is not in the layer') from None
        if stat.S_ISDIR(tst.st_mode):
            raise LayerError(f'invalid tar entry "{name}": hardlink to directory "{ti.linkname}"')
        path = self._parent(name, parts)
        self._remove(path)
        os.link(target, path, follow_symlinks=False)

    def finish(self) -> None:
        for path, ns in self.dir_times:
            try:
                os.utime(path, ns=(ns, ns), follow_symlinks=False)
            except (FileNotFoundError, OverflowError, ValueError):
                pass
        if self.root is not None:
            ti = self.root
            os.lchown(self.dest, ti.uid, ti.gid)
            os.chmod(self.dest, ti.mode & 0o777)
            self._set_xattrs(self.dest, ti)
            self._utime(self.dest, ti)


def extract_layer(stream, dest: str) -> int:
    """Extract the uncompressed tar `stream` (read sequentially, never seeked) into the existing empty
    directory `dest` as one overlayfs lower layer; returns the total bytes of regular-file content.

    Whiteouts become overlayfs whiteouts. Raises LayerError for unsafe or corrupt content; dest may
    then hold a partial extraction that the caller should remove."""
    dest = os.path.abspath(dest)
    if not stat.S_ISDIR(os.lstat(dest).st_mode):
        raise NotADirectoryError(dest)
    ex = _Extractor(dest)
    name = None
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFSIZE, tarinfo=_StrictTarInfo,
                          encoding="utf-8", errors="surrogateescape") as tf:
            ex.plain = _plain_stream(tf)
            while True:
                ti = tf.next()
                if ti is None:
                    break
                tf.members.clear()      # never looked up again; keeps memory flat for huge layers
                name = ti.name
                ex.entry(tf, ti)
        ex.finish()
    except LayerError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, UnicodeError) as e:
        raise LayerError(f"invalid tar archive: {e}") from None
    except OSError as e:
        if e.errno in _CONTENT_ERRNOS and name is not None:
            raise LayerError(f'invalid tar entry "{name}": {os.strerror(e.errno)}') from None
        raise
    return ex.total


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
