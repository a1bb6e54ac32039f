"""Mounts of the local volume driver (`volume create -o type=tmpfs,device=tmpfs,o=size=64m` or
`-o type=none,o=bind,device=/dir`): mount(2) and umount2(2) through ctypes, as overlay.py does.

The only host-touching part of volumes; tests hand the service a fake with the same three methods."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from app.runtime.host.errors import HostError

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS = 0x1, 0x2, 0x4, 0x8, 0x10
MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC, MS_NOATIME, MS_NODIRATIME = 0x20, 0x40, 0x80, 0x400, 0x800
MS_BIND, MS_REC, MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_STRICTATIME = 0x1000, 0x4000, 1 << 18, 1 << 19, 1 << 20, 1 << 24
MNT_DETACH = 2

# mount(8)'s flag words; everything else in `o=` is passed on as filesystem data
_FLAGS = {"ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False), "nosuid": (MS_NOSUID, True),
          "suid": (MS_NOSUID, False), "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
          "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False), "sync": (MS_SYNCHRONOUS, True),
          "async": (MS_SYNCHRONOUS, False), "dirsync": (MS_DIRSYNC, True), "noatime": (MS_NOATIME, True),
          "atime": (MS_NOATIME, False), "nodiratime": (MS_NODIRATIME, True), "diratime": (MS_NODIRATIME, False),
          "strictatime": (MS_STRICTATIME, True), "bind": (MS_BIND, True), "rbind": (MS_BIND | MS_REC, True),
          "defaults": (0, True)}


class VolumeMountError(HostError):
    """The kernel refused a local-driver mount (the request's options: a 400 at first use)."""

    def __init__(self, errno_: int, message: str):
        super().__init__(message, errno_)


def parse_options(text: str) -> tuple[int, str]:
    """`o=` → (mount flags, data string), as mount(8) splits them."""
    flags, data = 0, []
    for word in filter(None, (text or "").split(",")):
        if word in _FLAGS:
            bit, on = _FLAGS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    return flags, ",".join(data)


class VolumeMounts:
    def mount(self, device: str, target: str, fstype: str, options: str) -> None:
        flags, data = parse_options(options)
        fs = "" if flags & MS_BIND else (fstype if fstype and fstype != "none" else "")
        if _libc.mount(device.encode(), target.encode(), fs.encode() or None, flags,
                       data.encode() if data else None) != 0:
            err = ctypes.get_errno()
            raise VolumeMountError(err, f"failed to mount local volume: mount {device}:{target}, flags: "
                                        f"{hex(flags)}, data: {data}: {os.strerror(err)}")
        if flags & MS_BIND and flags & MS_RDONLY:     # a bind ignores MS_RDONLY until remounted
            _libc.mount(b"", target.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)

    def unmount(self, target: str) -> None:
        while self.is_mounted(target):
            if _libc.umount2(target.encode(), 0) != 0:
                err = ctypes.get_errno()
                if err == errno.EINVAL:
                    return
                if _libc.umount2(target.encode(), MNT_DETACH) != 0:
                    err = ctypes.get_errno()
                    raise HostError(f"umount {target}: {os.strerror(err)}", err)

    def is_mounted(self, target: str) -> bool:
        path = os.path.realpath(target)
        with open("/proc/self/mountinfo") as fh:
            return any(line.split()[4] == path for line in fh)

    def mounted_under(self, root: str) -> list[str]:
        """Every mount point below `root` (boot reconciliation)."""
        root = os.path.realpath(root).rstrip("/") + "/"
        with open("/proc/self/mountinfo") as fh:
            return [line.split()[4] for line in fh if line.split()[4].startswith(root)]


def mount_of(path: str) -> tuple[str, str]:
    """(mount point, optional fields such as "shared:1 master:2") of the mount that holds `path`."""
    path = os.path.realpath(path)
    best, fields = "/", ""
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            point = parts[4]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fields = point, " ".join(parts[6:parts.index("-")])
    return best, fields
