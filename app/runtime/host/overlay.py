"""A container's root filesystem: an overlay of the image's layer dirs with its own upper/work dirs,
and the changes it made to them (`docker diff`).

    <container dir>/upper   what the container wrote (whiteouts: 0/0 char devices, opaque xattr)
    <container dir>/work    overlayfs scratch
    <container dir>/rootfs  the mount point runc uses as root.path

Layer count: mount(2) copies one page (4096 bytes) of options, and the image store's lowerdirs are
~90 bytes each (<data-root>/image/layers/<64 hex>/diff), so the old `lowerdir=a:b:…` string held ~40
layers. On Linux ≥ 6.8 each layer is instead its own `lowerdir+` fsconfig call (the new mount API),
bounded only by overlayfs's stack of 500 lowers. Older kernels get mount(2) with each layer as
/proc/self/fd/N of an O_PATH fd when the plain paths do not fit (~19 bytes a layer: ~200 layers).
Neither keeps any state (no short-link dir to create, race over, or garbage-collect) or needs a cwd.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import stat

from app.runtime.host import fsmount
from app.runtime.host.errors import HostError, describe_os_error

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MNT_DETACH = 2
OVERLAY_XATTR_PREFIX = "trusted.overlay."     # overlayfs's own xattrs: never part of a layer
OPAQUE_XATTR = OVERLAY_XATTR_PREFIX + "opaque"
PAGE = 4096                 # mount(2) copies at most one page of options
MAX_LOWER_LAYERS = 500      # overlayfs's OVL_MAX_STACK: more lowers are refused with EINVAL


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
    mount_overlay(lowerdirs, upper, work, rootfs)
    return rootfs


@functools.cache
def lowerdir_plus() -> bool:
    """Whether overlayfs takes one `lowerdir+` per layer through fsconfig (Linux 6.8)."""
    return fsmount.supports_option("overlay", "lowerdir+", "/")


def mount_overlay(lowerdirs: list[str], upper: str, work: str, target: str, *, legacy: bool = False) -> None:
    """Mount an overlay of `lowerdirs` (bottom first) at `target`; `legacy` forces mount(2)."""
    if len(lowerdirs) > MAX_LOWER_LAYERS:
        raise MountError(errno.E2BIG, f"overlay of {len(lowerdirs)} layers: the kernel stacks at most "
                                      f"{MAX_LOWER_LAYERS}")
    if not legacy and lowerdir_plus():
        try:
            with fsmount.FsContext("overlay") as ctx:
                ctx.set("source", "overlay")               # as mount(2) named it in the mount table
                for lower in reversed(lowerdirs):          # the topmost lower first, as in lowerdir=
                    ctx.set("lowerdir+", lower)
                ctx.set("upperdir", upper)
                ctx.set("workdir", work)
                ctx.mount_at(target)
        except OSError as err:
            raise MountError(err.errno, str(err.strerror)) from None
        return
    tail = f",upperdir={upper},workdir={work}"
    options = f"lowerdir={':'.join(reversed(lowerdirs))}{tail}"
    if len(options) < PAGE:
        _mount("overlay", target, "overlay", options)
        return
    # Too long as paths: name each layer by an O_PATH fd of this process, which the kernel resolves
    # while it parses the options; the fds can go once the mount holds the layers.
    fds: list[int] = []
    try:
        for lower in reversed(lowerdirs):
            fds.append(os.open(lower, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        options = "lowerdir=" + ":".join(f"/proc/self/fd/{fd}" for fd in fds) + tail
        if len(options) >= PAGE:
            raise MountError(errno.E2BIG, f"overlay options for {len(lowerdirs)} layers exceed one page "
                                          "(this kernel has no overlayfs lowerdir+, Linux 6.8)")
        _mount("overlay", target, "overlay", options)
    finally:
        for fd in fds:
            os.close(fd)


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
