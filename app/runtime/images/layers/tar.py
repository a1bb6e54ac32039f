"""A directory (or an overlay upper dir) written as a layer tar: overlay whiteouts back to AUFS
whiteout files, xattrs as PAX records, entries in a stable order."""
from __future__ import annotations

import errno
import os
import stat
import tarfile
from typing import BinaryIO

from app.runtime.host.overlay import OPAQUE_XATTR, OVERLAY_XATTR_PREFIX
from app.runtime.images.layers import CHUNK
from app.runtime.images.layers.extract import WHITEOUT_OPAQUE, WHITEOUT_PREFIX

_PAX_XATTR_PREFIX = "SCHILY.xattr."
_SKIPPED_XATTRS = ("security.selinux",)          # host-specific label, never exported


def _read_xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIX) or name in _SKIPPED_XATTRS:
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


def write_layer_tar(src: str, out: BinaryIO, skip=None) -> int:
    """Write a deterministic PAX tar of directory `src` (an overlay upperdir or a layer diff) to `out`,
    translating overlayfs whiteouts back to '.wh.' files. Returns the number of bytes written.
    `skip(path)` (path absolute in the layer, "/etc/hostname") leaves an entry and what is below it out."""
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
        if skip is not None and skip("/" + rel):
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
