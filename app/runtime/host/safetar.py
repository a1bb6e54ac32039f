"""The one way to write files from a tar stream onto the host.

Every entry is created relative to a directory fd that was opened inside the target root with
openat2(2) and RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: no component of any path is
ever resolved through a symlink, so nothing can be written outside the root however the archive's
symlinks are chained. The last component is created with O_EXCL / O_NOFOLLOW; whatever already exists
there is unlinked (or removed, for a directory) first, never written through.

    extract(stream, root, *, limits=Limits(...), on_whiteout=hook, on_entry=hook, what="layer")

Bounds (Limits): the uncompressed bytes read, the claimed size of the files written (checked at each
header, so a huge claim is refused before a byte is written) and a free-space floor on the root's
file system, checked while writing. Exceeding them raises ArchiveTooLarge (HTTP 413). Bad content
raises ArchiveError (HTTP 400) naming the entry. Sparse entries are refused: Docker's own tar writer
never makes them, and expanding one is how a 1.5 KB archive fills a disk.
"""
from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
import lzma
from dataclasses import dataclass
from typing import Callable, Iterator

from app.runtime.host.errors import ArchiveError, ArchiveTooLarge
from app.runtime.host.overlay import OVERLAY_XATTR_PREFIX
from app.runtime.host.tarstream import StrictTarInfo, member_chunks, mtime_ns, plain_stream

CHUNK = 1 << 20
TAR_BUFSIZE = 64 << 10
FREE_CHECK_EVERY = 16 << 20     # bytes written between two statvfs checks of the free-space floor
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_IGNORABLE_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES,
                           errno.EINVAL, errno.ERANGE, errno.E2BIG}
# errors from file-system calls that the archive's content causes, not the host
_CONTENT_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EMLINK,
                   errno.ELOOP, errno.EINVAL, errno.ENOTEMPTY, errno.ENOENT, errno.EXDEV}
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# ------------------------------------------------------------------------------------------ openat2

_SYS_OPENAT2 = 437                  # the same number on every architecture (new syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def openat2(dir_fd: int, path: str, flags: int, resolve: int = _RESOLVE, mode: int = 0) -> int:
    """openat2(2); OSError on failure. EAGAIN (a concurrent rename) is retried."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(16):
        fd = _syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(raw),
                      ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def open_beneath(root_fd: int, rel: str, flags: int = os.O_RDONLY) -> int:
    """Open `rel` below root_fd, refusing any symlink on the way (for reading staged files)."""
    return openat2(root_fd, rel, flags | os.O_NOFOLLOW)


# ------------------------------------------------------------------------------------------ bounds

def human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 0       # bound on uncompressed bytes read and on bytes written; 0 = none
    min_free: int = 0        # free bytes the root's file system must keep; 0 = none

    def too_large(self, what: str) -> ArchiveTooLarge:
        return ArchiveTooLarge(f"{what} exceeds the maximum upload size of {human(self.max_bytes)} "
                               "(daemon flag --max-upload-size)")


class BoundedReader:
    """Counts the bytes read through it; raises ArchiveTooLarge past limits.max_bytes. Use it in front
    of a decompressor's output, so a compression bomb is stopped as soon as it expands too far."""

    def __init__(self, stream, limits: Limits | None):
        self._stream = stream
        self._max = limits.max_bytes if limits else 0
        self._limits = limits
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n) if n is not None and n >= 0 else self._stream.read(CHUNK)
        self.count += len(data)
        if self._max and self.count > self._max:
            raise self._limits.too_large("the archive")
        return data

    def close(self) -> None:
        pass


def check_free_space(fd: int, limits: Limits | None, need: int = 0) -> None:
    if not limits or not limits.min_free:
        return
    st = os.fstatvfs(fd)
    free = st.f_bavail * st.f_frsize
    if free - need < limits.min_free:
        raise ArchiveTooLarge(f"not enough free space: writing the archive would leave less than "
                              f"{human(limits.min_free)} free in the data root "
                              f"({human(free)} free; daemon flag --min-free-space)")


def split_name(name: str, entry: str, what: str, kind: str = "path") -> list[str]:
    """The components of an entry name, lexically normalized; refuses NUL, absolute and `..` names."""
    if "\0" in name:
        raise ArchiveError(f'invalid tar entry "{entry}": {kind} contains a NUL byte')
    if name.startswith("/"):
        raise ArchiveError(f'invalid tar entry "{entry}": absolute {kind} "{name}" is not allowed')
    norm = posixpath.normpath(name)
    if norm == ".":
        return []
    parts = norm.split("/")
    if parts[0] == "..":
        raise ArchiveError(f'invalid tar entry "{entry}": {kind} "{name}" escapes the {what}')
    return parts


# ------------------------------------------------------------------------------------------ writing

class Target:
    """A root directory fd plus a small cache of verified directory fds below it."""

    CACHE = 128

    def __init__(self, root_fd: int, what: str, limits: Limits | None):
        self.root_fd = root_fd
        self.what = what
        self.limits = limits
        self._dirs: dict[str, int] = {}
        self._stale: list[int] = []          # fds of removed trees, closed before the next entry
        self.written = 0
        self._since_check = 0

    def close(self) -> None:
        self.forget()
        self.release()

    def forget(self) -> None:
        """Drop the cache (a directory was removed); its fds stay open until release()."""
        self._stale += self._dirs.values()
        self._dirs.clear()

    def release(self) -> None:
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def _path_error(self, err: OSError, parts: list[str], entry: str) -> Exception:
        """Name the component that stopped resolution (ELOOP: a symlink; ENOTDIR: not a directory)."""
        if err.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV, errno.ENOENT):
            return err
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[:i])
            try:
                st = os.stat(rel, dir_fd=self.root_fd, follow_symlinks=False)
            except OSError:
                return ArchiveError(f'invalid tar entry "{entry}": "{rel}" does not exist in the {self.what}')
            if stat.S_ISLNK(st.st_mode):
                return ArchiveError(f'invalid tar entry "{entry}": path escapes the {self.what} through '
                                    f'symlink "{rel}"')
            if not stat.S_ISDIR(st.st_mode):
                return ArchiveError(f'invalid tar entry "{entry}": parent "{rel}" is not a directory')
        return ArchiveError(f'invalid tar entry "{entry}": {os.strerror(err.errno)}')

    def dir_fd(self, parts: list[str], entry: str, create: bool = True) -> int:
        """An fd of the directory `parts` below the root (created, mode 0755, if missing and `create`),
        never through a symlink. Owned by the cache: do not close it."""
        if not parts:
            return self.root_fd
        key = "/".join(parts)
        fd = self._dirs.pop(key, None)
        if fd is None:
            try:
                fd = openat2(self.root_fd, key, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as err:
                if err.errno != errno.ENOENT or not create:
                    raise self._path_error(err, parts, entry) from None
                parent = self.dir_fd(parts[:-1], entry, create)
                try:
                    os.mkdir(parts[-1], 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                try:
                    fd = openat2(parent, parts[-1], os.O_RDONLY | os.O_DIRECTORY)
                except OSError as err2:
                    raise self._path_error(err2, parts, entry) from None
                os.fchmod(fd, 0o755)         # mkdir's mode went through the umask
        self._dirs[key] = fd                 # most recently used last
        while len(self._dirs) > self.CACHE:
            os.close(self._dirs.pop(next(iter(self._dirs))))
        return fd

    def remove(self, parent_fd: int, name: str) -> os.stat_result | None:
        """Remove whatever is at name in parent_fd, never following a symlink."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            self.forget()                    # cached fds below it are about to go
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        return st

    def create(self, parent_fd: int, name: str, make: Callable[[], object],
               on_existing: Callable[[os.stat_result], None] | None = None):
        """make() creates name exclusively; an existing entry is removed first, never written through.
        on_existing(stat) may refuse to replace it (by raising)."""
        try:
            return make()
        except FileExistsError:
            if on_existing is not None:
                on_existing(os.stat(name, dir_fd=parent_fd, follow_symlinks=False))
            self.remove(parent_fd, name)
            return make()

    def claim(self, size: int, entry: str) -> None:
        self.written += size
        if self.limits and self.limits.max_bytes and self.written > self.limits.max_bytes:
            raise self.limits.too_large(f'the archive\'s content (at entry "{entry}")')
        if size >= FREE_CHECK_EVERY:
            check_free_space(self.root_fd, self.limits, size)

    def wrote(self, n: int) -> None:
        self._since_check += n
        if self._since_check >= FREE_CHECK_EVERY:
            self._since_check = 0
            check_free_space(self.root_fd, self.limits)


def _xattrs(ti: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, value in ti.pax_headers.items():
        if key.startswith(_PAX_XATTR_PREFIX):
            name = key[len(_PAX_XATTR_PREFIX):]
            if not name or name.startswith(OVERLAY_XATTR_PREFIX):
                continue        # overlay's own metadata must only come from whiteout entries
            yield name, value.encode("utf-8", "surrogateescape")


def _set_xattrs(target, ti: tarfile.TarInfo, follow: bool = True) -> None:
    if not ti.pax_headers:
        return
    for name, value in _xattrs(ti):
        try:
            os.setxattr(target, name, value, follow_symlinks=follow)
        except OSError as e:
            if e.errno not in _IGNORABLE_XATTR_ERRNOS:
                raise


def _utime(target, ti: tarfile.TarInfo, **kw) -> None:
    ns = mtime_ns(ti.mtime)
    try:
        os.utime(target, ns=(ns, ns), **kw)
    except (OverflowError, ValueError):
        pass


WhiteoutHook = Callable[[Target, int, str, tarfile.TarInfo], bool]


class _Extractor:
    def __init__(self, target: Target, on_whiteout: WhiteoutHook | None, on_entry, what: str,
                 keep_kinds: str | None = None):
        self.t = target
        self.keep_kinds = keep_kinds
        self.on_whiteout = on_whiteout
        self.on_entry = on_entry
        self.what = what
        self.dir_times: list[tuple[list[str], int]] = []
        self.root: tarfile.TarInfo | None = None
        self.total = 0
        self.plain = None

    def entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        name = ti.name
        self.t.release()
        parts = split_name(name, name, self.what)
        if ti.sparse is not None:
            raise ArchiveError(f'invalid tar entry "{name}": sparse files are not supported')
        if self.on_entry is not None and self.on_entry(parts, ti):
            return
        if not parts:
            if not ti.isdir():
                raise ArchiveError(f'invalid tar entry "{name}": the {self.what} root must be a directory')
            self.root = ti
            return
        base = parts[-1]
        if ti.islnk():
            self._hardlink(ti, name, parts)
            return
        if ti.ischr() or ti.isblk():
            if self.on_whiteout is None or not base.startswith(".wh."):
                raise ArchiveError(f'invalid tar entry "{name}": device nodes are not allowed in {self.what}s')
        if self.on_whiteout is not None and base.startswith(".wh."):
            pfd = self.t.dir_fd(parts[:-1], name)
            if self.on_whiteout(self.t, pfd, base, ti):
                return
        if not (ti.isreg() or ti.isdir() or ti.issym() or ti.isfifo()):
            raise ArchiveError(f'invalid tar entry "{name}": unsupported entry type {ti.type!r}')
        if ti.issym() and not ti.linkname:
            raise ArchiveError(f'invalid tar entry "{name}": symlink with an empty target')
        pfd = self.t.dir_fd(parts[:-1], name)
        mode = ti.mode & 0o7777
        if ti.isdir():
            self._directory(ti, parts, pfd, base, mode)
        elif ti.isreg():
            self.t.claim(ti.size, name)
            fd = self.t.create(pfd, base, lambda: os.open(base, _CREATE, 0o600, dir_fd=pfd),
                               self._kind_check(parts, ti))
            try:
                if ti.size:
                    self._copy(tf, ti, fd)
                os.fchown(fd, ti.uid, ti.gid)
                os.fchmod(fd, mode)
                _set_xattrs(fd, ti)
                _utime(fd, ti)
            finally:
                os.close(fd)
            self.total += ti.size
        elif ti.issym():
            self.t.create(pfd, base, lambda: os.symlink(ti.linkname, base, dir_fd=pfd), self._kind_check(parts, ti))
            os.chown(base, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False)
            _set_xattrs(f"/proc/self/fd/{pfd}/{base}", ti, follow=False)
            _utime(base, ti, dir_fd=pfd, follow_symlinks=False)
        else:  # FIFO
            self.t.create(pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd), self._kind_check(parts, ti))
            os.chown(base, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False)
            os.chmod(base, mode, dir_fd=pfd, follow_symlinks=False)
            _set_xattrs(f"/proc/self/fd/{pfd}/{base}", ti, follow=False)
            _utime(base, ti, dir_fd=pfd, follow_symlinks=False)

    def _kind_check(self, parts: list[str], ti: tarfile.TarInfo):
        """With keep_kinds (moby's NoOverwriteDirNonDir, `keep_kinds` the extraction point's path for
        the messages): an existing directory is never replaced by a non-directory, nor the reverse."""
        if self.keep_kinds is None:
            return None

        def check(st: os.stat_result) -> None:
            where = posixpath.join(self.keep_kinds, *parts)
            if stat.S_ISDIR(st.st_mode) and not ti.isdir():
                raise ArchiveError(f'cannot overwrite directory "{where}" with non-directory "{ti.name}"')
            if not stat.S_ISDIR(st.st_mode) and ti.isdir():
                raise ArchiveError(f'cannot overwrite non-directory "{where}" with directory "{ti.name}"')
        return check

    def _directory(self, ti, parts, pfd, base, mode) -> None:
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and (check := self._kind_check(parts, ti)):
            check(st)
        if st is None or not stat.S_ISDIR(st.st_mode):
            if st is not None:
                os.unlink(base, dir_fd=pfd)      # a file or symlink is replaced, never followed
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = self.t.dir_fd(parts, ti.name, create=False)
        os.fchown(fd, ti.uid, ti.gid)
        os.fchmod(fd, mode)
        _set_xattrs(fd, ti)
        self.dir_times.append((parts, mtime_ns(ti.mtime)))

    def _copy(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, fd: int) -> None:
        remaining = ti.size
        write = os.write
        for buf in member_chunks(tf, ti, self.plain):
            remaining -= len(buf)
            view = memoryview(buf)
            while view:
                view = view[write(fd, view):]
            self.t.wrote(len(buf))
        if remaining:
            raise tarfile.ReadError(f'unexpected end of data in "{ti.name}"')

    def _hardlink(self, ti: tarfile.TarInfo, name: str, parts: list[str]) -> None:
        lparts = split_name(ti.linkname, name, self.what, "hardlink target")
        if not lparts:
            raise ArchiveError(f'invalid tar entry "{name}": hardlink to the {self.what} root')
        if lparts == parts:
            raise ArchiveError(f'invalid tar entry "{name}": hardlink to itself')
        pfd = self.t.dir_fd(parts[:-1], name)
        if check := self._kind_check(parts, ti):
            try:
                check(os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False))
            except FileNotFoundError:
                pass
        self.t.remove(pfd, parts[-1])
        tfd = self.t.dir_fd(lparts[:-1], name, create=False)
        try:
            tst = os.stat(lparts[-1], dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            raise ArchiveError(f'invalid tar entry "{name}": hardlink target "{ti.linkname}" '
                               f'is not in the {self.what}') from None
        if stat.S_ISDIR(tst.st_mode):
            raise ArchiveError(f'invalid tar entry "{name}": hardlink to directory "{ti.linkname}"')
        # linkat without AT_SYMLINK_FOLLOW: a hardlink to a symlink links the symlink itself
        os.link(lparts[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        for parts, ns in self.dir_times:
            try:
                pfd = self.t.dir_fd(parts[:-1], "/".join(parts), create=False)
                os.utime(parts[-1], ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)
            except (ArchiveError, FileNotFoundError, OverflowError, ValueError):
                pass
        if self.root is not None:
            ti, fd = self.root, self.t.root_fd
            os.fchown(fd, ti.uid, ti.gid)
            os.fchmod(fd, ti.mode & 0o777)
            _set_xattrs(fd, ti)
            _utime(fd, ti)


def extract(stream, root, *, limits: Limits | None = None, on_whiteout: WhiteoutHook | None = None,
            on_entry: Callable[[list[str], tarfile.TarInfo], bool] | None = None, what: str = "archive",
            keep_kinds: str | None = None) -> int:
    """Extract the uncompressed tar `stream` (read sequentially) into `root` (a path or a directory
    fd; it must exist). Returns the bytes of regular-file content written.

    on_whiteout(target, parent_fd, basename, tarinfo) is called for names starting with `.wh.`; it
    returns True when it handled the entry (None: such names are ordinary files). on_entry(parts,
    tarinfo) sees every entry first; True means "handled, write nothing". `what` names the root in
    messages ("layer", "archive"). keep_kinds: see _Extractor._kind_check. Raises ArchiveError / ArchiveTooLarge; root may then hold a partial
    extraction that the caller removes."""
    own = not isinstance(root, int)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC) if own else root
    target = Target(root_fd, what, limits)
    ex = _Extractor(target, on_whiteout, on_entry, what, keep_kinds)
    name = None
    try:
        check_free_space(root_fd, limits)
        with tarfile.open(fileobj=BoundedReader(stream, limits), mode="r|", bufsize=TAR_BUFSIZE,
                          tarinfo=StrictTarInfo, encoding="utf-8", errors="surrogateescape") as tf:
            ex.plain = plain_stream(tf)
            while True:
                ti = tf.next()
                if ti is None:
                    break
                tf.members.clear()      # never looked up again; keeps memory flat for huge archives
                name = ti.name
                ex.entry(tf, ti)
        ex.finish()
    except (ArchiveError, ArchiveTooLarge):
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, UnicodeError, ValueError,
            IndexError) as e:
        raise ArchiveError(f"invalid tar archive: {e}") from None
    except OSError as e:
        if e.errno in _CONTENT_ERRNOS and name is not None:
            raise ArchiveError(f'invalid tar entry "{name}": {os.strerror(e.errno)}') from None
        raise
    finally:
        target.close()
        if own:
            os.close(root_fd)
    return ex.total
