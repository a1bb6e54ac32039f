"""Copy a directory tree from one directory fd into another, as `cp -a src/. dst/` does: owners,
modes (setuid/setgid/sticky too), access and modification times, xattrs (file capabilities and ACLs
among them), symlinks as symlinks, hard links within the tree as hard links, devices, fifos and
sockets as nodes; sparse files stay sparse. The volume copy-in (app/runtime/volumes/local.py).

Why not cp: the source is a container's overlay root. GNU cp's copy_file_range fails across file
systems (overlay → ext4: EXDEV) and it falls back to read/write through a user buffer, about twice
the time of copying the same tree outside overlay. sendfile(2) splices from overlay's backing file
in the kernel and brings the copy back to that floor (bench/volumes.py).

Safety: the walk only ever opens one name relative to a directory fd with O_NOFOLLOW, so a symlink
in the source, put there by the image or by a container that used this root before, is copied as a
link and never followed; nothing outside the source tree is read. Everything is created relative to
destination directory fds with O_EXCL / mkdirat / symlinkat / mknodat, which never follow a link, and
a hard link's first copy is reopened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so another
container writing the same volume meanwhile cannot redirect any of it out of the volume.
"""
from __future__ import annotations

import errno
import os
import stat

from app.runtime.host.safetar import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2

O_PATH = getattr(os, "O_PATH", 0o10000000)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_DST = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_IGNORED_XATTR = (errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENODATA, errno.ERANGE)
SEND_MAX = 0x7FFFF000


class _Copy:
    def __init__(self, dst_root: int):
        self.dst_root = dst_root
        self.links: dict[tuple[int, int], str] = {}      # (dev, ino) of the source → path in the destination
        self.owner = (os.geteuid(), os.getegid())
        umask = os.umask(0)
        os.umask(umask)
        self.umask = umask
        self.splice = True                               # sendfile works on this source (else read/write)

    # ------------------------------------------------------------------ data

    def data(self, src: int, dst: int, st: os.stat_result) -> None:
        size = st.st_size
        if not size:
            return
        if st.st_blocks * 512 < size:                    # holes: copy the data segments only
            off = 0
            while off < size:
                try:
                    start = os.lseek(src, off, os.SEEK_DATA)
                except OSError as err:
                    if err.errno == errno.ENXIO:         # no data after off: the rest is a hole
                        break
                    raise
                end = os.lseek(src, start, os.SEEK_HOLE)
                self.span(src, dst, start, end - start)
                off = end
            os.ftruncate(dst, size)
            return
        self.span(src, dst, 0, size)

    def span(self, src: int, dst: int, off: int, count: int) -> None:
        end = off + count
        if self.splice:
            try:
                os.lseek(dst, off, os.SEEK_SET)
                while off < end:
                    sent = os.sendfile(dst, src, off, min(end - off, SEND_MAX))
                    if sent == 0:                        # the file shrank meanwhile
                        return
                    off += sent
                return
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self.splice = False                      # a file system without splice: plain copy
        while off < end:
            chunk = os.pread(src, min(end - off, 1 << 20), off)
            if not chunk:
                return
            os.pwrite(dst, chunk, off)
            off += len(chunk)

    # ------------------------------------------------------------------ metadata

    @staticmethod
    def xattrs(src, dst, follow: bool = True) -> None:
        """Every xattr the source lists (overlay hides its own); what the destination refuses is
        skipped silently, as `cp -a` does."""
        try:
            names = os.listxattr(src, follow_symlinks=follow)
        except OSError as err:
            if err.errno in _IGNORED_XATTR:
                return
            raise
        for name in names:
            try:
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=follow), follow_symlinks=follow)
            except OSError as err:
                if err.errno not in _IGNORED_XATTR:
                    raise

    def owner_mode(self, fd: int, st: os.stat_result, created_mode: int | None) -> None:
        """On an open fd: the owner first (chown clears setuid/setgid and file capabilities), then
        the mode (skipped when the create already gave it; `created_mode` None: always)."""
        mode = stat.S_IMODE(st.st_mode)
        chowned = (st.st_uid, st.st_gid) != self.owner
        if chowned:
            os.fchown(fd, st.st_uid, st.st_gid)
        if created_mode is None or mode != created_mode & ~self.umask or (chowned and mode & 0o6000):
            os.fchmod(fd, mode)

    # ------------------------------------------------------------------ entries

    def linked(self, st: os.stat_result, name: str, dfd: int, rel: str) -> bool:
        """A further name of an inode already copied: a hard link to the first copy."""
        if st.st_nlink < 2:
            return False
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key)
        if first is None:
            self.links[key] = rel
            return False
        fd = openat2(self.dst_root, first, O_PATH | os.O_NOFOLLOW, _BENEATH)
        try:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
        finally:
            os.close(fd)
        return True

    def regular(self, sfd: int, dfd: int, name: str, rel: str) -> os.stat_result | None:
        """A regular file; returns its stat when it is no regular file after all (swapped meanwhile)."""
        try:
            src = os.open(name, _SRC, dir_fd=sfd)
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            return os.stat(name, dir_fd=sfd, follow_symlinks=False)     # a symlink now: not followed
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):
                return st
            if self.linked(st, name, dfd, rel):
                return None
            dst = os.open(name, _DST, 0o600, dir_fd=dfd)
            try:
                self.data(src, dst, st)
                self.owner_mode(dst, st, 0o600)
                self.xattrs(src, dst)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return None

    def special(self, sfd: int, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        """A symlink (copied as its target text, never followed), device, fifo or socket."""
        if self.linked(st, name, dfd, rel):
            return
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
        else:
            os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=dfd)
        if (st.st_uid, st.st_gid) != self.owner:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            # the node was made just now in a directory only this copy writes: no link to follow
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
        self.xattrs(f"/proc/self/fd/{sfd}/{name}", f"/proc/self/fd/{dfd}/{name}", follow=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def tree(self, src_root: int) -> None:
        """Depth first with an explicit stack of (source fd, destination fd, entries, stat, rel):
        a directory's own owner, mode, xattrs and times are set after its content."""
        stack = [(src_root, self.dst_root, self.entries(src_root), os.fstat(src_root), "")]
        try:
            while stack:
                sfd, dfd, entries, dst_st, rel = stack[-1]
                entry = next(entries, None)
                if entry is None:
                    stack.pop()
                    self.finish_dir(sfd, dfd, dst_st)
                    if stack:                        # the root's fds belong to the caller
                        os.close(sfd)
                        os.close(dfd)
                    continue
                name = entry.name
                path = f"{rel}/{name}" if rel else name
                if entry.is_file(follow_symlinks=False):
                    st = self.regular(sfd, dfd, name, path)
                    if st is None:
                        continue
                else:
                    st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(name, 0o700, dir_fd=dfd)
                    child_src = os.open(name, _DIR, dir_fd=sfd)
                    try:
                        child_dst = os.open(name, _DIR, dir_fd=dfd)
                    except BaseException:
                        os.close(child_src)
                        raise
                    stack.append((child_src, child_dst, self.entries(child_src), os.fstat(child_src), path))
                elif stat.S_ISREG(st.st_mode):
                    if self.regular(sfd, dfd, name, path) is not None:
                        raise OSError(errno.EAGAIN, "the file changed type while it was copied", path)
                else:
                    self.special(sfd, dfd, name, path, st)
        finally:
            for sfd, dfd, _, _, _ in stack[1:]:
                os.close(sfd)
                os.close(dfd)

    @staticmethod
    def entries(fd: int):
        with os.scandir(fd) as it:
            listed = list(it)
        return iter(listed)

    def finish_dir(self, sfd: int, dfd: int, st: os.stat_result) -> None:
        self.owner_mode(dfd, st, None)
        self.xattrs(sfd, dfd)
        os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_tree(src_fd: int, dst_fd: int) -> None:
    """The content of directory `src_fd` into the (empty) directory `dst_fd`, which also takes the
    source directory's owner, mode, xattrs and times (`cp -a src/. dst/`)."""
    _Copy(dst_fd).tree(src_fd)
