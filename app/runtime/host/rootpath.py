"""Paths inside a container's root file system, resolved as the container sees them.

Every lookup starts from a directory fd of the rootfs and goes through openat2(2) with
RESOLVE_IN_ROOT: an absolute symlink in the container (`/etc -> /x`) resolves to the container's own
/x and `..` stops at the root, so nothing on the host outside the rootfs is ever reached. Tars read
out (`GET /containers/{id}/archive`) are walked with directory fds opened RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS from the entry's parent: a directory a container process swaps for a symlink
mid-walk is refused, never followed. Writes go through safetar.extract onto a directory fd got the
same way.

The path rules are moby's (daemon/archive.go, container/archive.go): the directory part of a path is
resolved in scope, its last component is not followed unless the path ends in `/` or `/.`.
"""
from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import Iterator

from app.common.filespan import FileSpan

from app.runtime.host.safetar import RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, \
    RESOLVE_NO_SYMLINKS, openat2

O_PATH = getattr(os, "O_PATH", 0o10000000)
_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
CHUNK = 1 << 20
SPAN_MIN = 256 << 10         # smaller files are gathered into CHUNK-sized pieces instead

# Go's os.FileMode type bits
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    """A POSIX st_mode as Go's os.FileMode (what Docker's ContainerPathStat.Mode carries)."""
    out = mode & 0o777
    if stat.S_ISDIR(mode):
        out |= GO_DIR
    elif stat.S_ISLNK(mode):
        out |= GO_SYMLINK
    elif stat.S_ISFIFO(mode):
        out |= GO_PIPE
    elif stat.S_ISSOCK(mode):
        out |= GO_SOCKET
    elif stat.S_ISBLK(mode):
        out |= GO_DEVICE
    elif stat.S_ISCHR(mode):
        out |= GO_DEVICE | GO_CHARDEV
    if mode & stat.S_ISUID:
        out |= GO_SETUID
    if mode & stat.S_ISGID:
        out |= GO_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_STICKY
    return out


def abs_path(path: str) -> str:
    """moby's PreserveTrailingDotOrSeparator(Join("/", path), path)."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/.") or path == ".":
        return cleaned.rstrip("/") + "/." if cleaned != "/" else "/."
    if path.endswith("/") and cleaned != "/":
        return cleaned + "/"
    return cleaned


def _rel(path: str) -> str:
    rel = path.strip("/")
    return rel or "."


@dataclass
class Found:
    """A path resolved in the root: `parent_fd` (owned, close it) and `base` ('' = parent_fd itself)."""
    parent_fd: int
    base: str
    abs_path: str
    st: os.stat_result

    @property
    def name(self) -> str:
        trimmed = self.abs_path.rstrip("/") if self.abs_path != "/" else "/"
        if self.abs_path.endswith("/."):
            return "."
        return posixpath.basename(trimmed) or "/"

    def close(self) -> None:
        os.close(self.parent_fd)


def lookup(root_fd: int, path: str) -> Found:
    """Resolve `path` as the container sees it (FileNotFoundError / NotADirectoryError as the kernel
    says). The last component is not followed unless the path ends in `/` or `/.`."""
    absp = abs_path(path)
    dir_part, base = posixpath.split(absp)
    if base == ".":
        base = ""
    fd = openat2(root_fd, _rel(dir_part), os.O_RDONLY | os.O_DIRECTORY, _IN_ROOT)
    try:
        st = os.fstat(fd) if not base else os.stat(base, dir_fd=fd, follow_symlinks=False)
    except BaseException:
        os.close(fd)
        raise
    return Found(fd, base, absp, st)


def link_target(root_fd: int, root_path: str, path: str, found: Found) -> str:
    """A symlink's target fully resolved in the root, as an absolute container path (moby's linkTarget)."""
    try:
        fd = openat2(root_fd, _rel(found.abs_path), O_PATH, _IN_ROOT)
    except OSError:
        # dangling: the lexical target, relative to the link's directory
        target = os.readlink(found.base, dir_fd=found.parent_fd)
        here = os.readlink(f"/proc/self/fd/{found.parent_fd}")
        parent = "/" + os.path.relpath(here, os.path.realpath(root_path)).lstrip(".")
        return posixpath.normpath(posixpath.join(parent if parent != "/." else "/", target))
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    rel = os.path.relpath(real, os.path.realpath(root_path))
    return "/" if rel == "." else "/" + rel


def open_dir(root_fd: int, path: str) -> int:
    """A directory fd for `path` followed fully in the root (an extraction point)."""
    return openat2(root_fd, _rel(abs_path(path)), os.O_RDONLY | os.O_DIRECTORY, _IN_ROOT)


def read_file(root_fd: int, path: str, limit: int = 1 << 20) -> bytes | None:
    """A small file of the container (its /etc/passwd), or None."""
    try:
        fd = openat2(root_fd, _rel(path), os.O_RDONLY, _IN_ROOT)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ tar out

class _Out:
    def __init__(self):
        self.buf = bytearray()
        self.spans = False

    def header(self, ti: tarfile.TarInfo) -> None:
        ti.uname = ti.gname = ""
        self.buf += ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def take(self) -> bytes:
        data, self.buf = bytes(self.buf), bytearray()
        return data


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = st.st_mtime_ns // 1_000_000_000
    return ti


def tar_entry(found: Found, rebase: str, spans: bool = False) -> Iterator[bytes | FileSpan]:
    """A tar stream of the resolved entry (recursively for a directory), named `rebase` at the top,
    never following a symlink below the entry itself. With `spans`, files of SPAN_MIN bytes or more
    come as FileSpans for the server to sendfile (app/common/filespan.py)."""
    out = _Out()
    out.spans = spans
    links: dict[tuple[int, int], str] = {}
    yield from _emit(out, found.parent_fd, found.base, rebase, found.st, links, top=True)
    out.buf += bytes(2 * tarfile.BLOCKSIZE)
    yield out.take()


def _emit(out: _Out, dir_fd: int, base: str, name: str, st: os.stat_result, links, top=False):
    mode = st.st_mode
    ti = _info(name, st)
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
            out.header(ti)
            return
        if st.st_nlink > 1:
            links[key] = name
        fd = openat2(dir_fd, base, os.O_RDONLY | os.O_NOFOLLOW, _BENEATH)
        try:
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            out.header(ti)
            remaining = st.st_size
            if out.spans and remaining >= SPAN_MIN:
                yield out.take()
                yield FileSpan(fd, remaining)       # sent before this generator resumes and closes fd
                remaining = 0
            while remaining > 0:
                data = os.read(fd, min(CHUNK, remaining))
                if not data:
                    break
                remaining -= len(data)
                if out.buf or len(data) < CHUNK:     # small files are gathered into CHUNK-sized pieces
                    out.buf += data
                    if len(out.buf) >= CHUNK:
                        yield out.take()
                else:
                    yield data
            if remaining:
                out.buf += bytes(remaining)     # it shrank while read: the header's size stands
        finally:
            os.close(fd)
        out.buf += bytes(-st.st_size % tarfile.BLOCKSIZE)
    elif stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
        out.header(ti)
        sub = os.dup(dir_fd) if not base else openat2(dir_fd, base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                                      _BENEATH)
        try:
            with os.scandir(sub) as it:
                children = sorted((e.name, e.stat(follow_symlinks=False)) for e in it)
            prefix = name.rstrip("/") + "/" if name not in (".", "./") else "./"
            for child, cst in children:
                yield from _emit(out, sub, child, prefix + child, cst, links)
                if len(out.buf) >= CHUNK:
                    yield out.take()
        finally:
            os.close(sub)
    elif stat.S_ISLNK(mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(base, dir_fd=dir_fd) if base else ""
        out.header(ti)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
        out.header(ti)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        out.header(ti)
    # sockets: tar cannot carry them (moby skips them too)


def lookup_user(root_fd: int, user: str) -> tuple[int, int]:
    """The container's User ("name", "uid", "uid:gid", "name:group") as numbers, from its /etc/passwd
    and /etc/group; root when empty. KeyError names what is missing."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")

    def table(path: str) -> list[list[str]]:
        raw = read_file(root_fd, path) or b""
        return [line.split(":") for line in raw.decode(errors="replace").splitlines() if line.count(":") >= 2]

    uid = gid = None
    if name.isdigit():
        uid = int(name)
        for row in table("/etc/passwd"):
            if row[2] == name and len(row) > 3 and row[3].isdigit():
                gid = int(row[3])
    else:
        for row in table("/etc/passwd"):
            if row[0] == name and row[2].isdigit():
                uid, gid = int(row[2]), int(row[3]) if len(row) > 3 and row[3].isdigit() else 0
                break
        if uid is None:
            raise KeyError(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = next((int(r[2]) for r in table("/etc/group") if r[0] == group and r[2].isdigit()), None)
            if gid is None:
                raise KeyError(f"unable to find group {group}: no matching entries in group file")
    return uid, gid if gid is not None else 0


