"""A container's root filesystem: an overlay of the image's layer dirs with its own upper/work dirs,
and the changes it made to them (`docker diff`).

    <container dir>/upper   what the container wrote (whiteouts: 0/0 char devices, opaque xattr)
    <container dir>/work    overlayfs scratch
    <container dir>/rootfs  the mount point runc uses as root.path
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat

from app.runtime.host.errors import HostError, describe_os_error

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MNT_DETACH = 2
OVERLAY_XATTR_PREFIX = "trusted.overlay."     # overlayfs's own xattrs: never part of a layer
OPAQUE_XATTR = OVERLAY_XATTR_PREFIX + "opaque"


class MountError(HostError):
    """A mount or unmount failed (HTTP 500): a system fault, never the request's."""

    def __init__(self, errno_: int, message: str):
        super().__init__(message, errno_)


def _mount(source: str, target: str, fstype: str, options: str) -> None:
    # ctypes mount(2): no fork/exec of mount(8) on every container start.
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"error mounting {fstype} on {target}: {os.strerror(err)}")


def is_mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == path for line in fh)


def mount_rootfs(container_dir: str, lowerdirs: list[str]) -> str:
    """Mount the overlay (lowerdirs ordered bottom layer first) and return the rootfs path."""
    if not lowerdirs:
        raise ValueError("an overlay needs at least one lower layer")
    upper, work, rootfs = (os.path.join(container_dir, d) for d in ("upper", "work", "rootfs"))
    try:
        for path in (upper, work, rootfs):
            os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as err:
        raise MountError(err.errno or 0, f"error preparing the container's root filesystem: "
                                         f"{describe_os_error(err)}") from err
    if is_mounted(rootfs):
        return rootfs
    missing = next((d for d in lowerdirs if not os.path.isdir(d)), None)
    if missing is not None:         # the kernel would only say ENOENT; name the damaged layer
        raise MountError(errno.ENOENT, f"error mounting the container's root filesystem: image layer "
                                       f"directory {missing} is missing (remove the image and pull or load it again)")
    options = f"lowerdir={':'.join(reversed(lowerdirs))},upperdir={upper},workdir={work}"
    if len(options) >= 4096:  # the kernel copies at most one page of mount data
        raise MountError(errno.E2BIG, f"overlay options for {len(lowerdirs)} layers exceed one page")
    _mount("overlay", rootfs, "overlay", options)
    return rootfs


def unmount_rootfs(container_dir: str) -> None:
    """Unmount the container's rootfs if mounted (lazily when busy), leaving upper/work in place."""
    rootfs = os.path.join(container_dir, "rootfs")
    while is_mounted(rootfs):
        if _libc.umount2(rootfs.encode(), 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EINVAL:
                return
            if _libc.umount2(rootfs.encode(), MNT_DETACH) != 0:
                err = ctypes.get_errno()
                raise MountError(err, f"umount {rootfs}: {os.strerror(err)}")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _exists_below(rel: str, lowerdirs: list[str]) -> bool:
    return any(os.path.lexists(os.path.join(lower, rel)) for lower in lowerdirs)


def changes(upper: str, lowerdirs: list[str]) -> list[tuple[str, str]]:
    """`docker diff`: [(kind, path)] with kind A (added), C (changed), D (deleted), sorted by path."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(os.path.join(dirpath, name))
            path = "/" + rel
            if _is_whiteout(st):
                out[path] = "D"
                continue
            out[path] = "C" if _exists_below(rel, lowerdirs) else "A"
            if stat.S_ISDIR(st.st_mode) and out[path] == "C":
                try:
                    opaque = os.getxattr(os.path.join(dirpath, name), OPAQUE_XATTR, follow_symlinks=False)
                except OSError:
                    opaque = b""
                if opaque == b"y":   # everything below from the image is gone
                    for lower in lowerdirs:
                        below = os.path.join(lower, rel)
                        if os.path.isdir(below) and not os.path.islink(below):
                            for child in os.listdir(below):
                                if not os.path.lexists(os.path.join(dirpath, name, child)):
                                    out[f"{path}/{child}"] = "D"
    return sorted(((kind, path) for path, kind in out.items()), key=lambda item: item[1])


class Overlay:
    """The adapter the engine hands to the container services (tests hand a fake one)."""

    mount = staticmethod(mount_rootfs)
    unmount = staticmethod(unmount_rootfs)
    is_mounted = staticmethod(is_mounted)
    changes = staticmethod(changes)
