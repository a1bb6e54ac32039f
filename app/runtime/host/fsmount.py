"""The new mount API (fsopen, fsconfig, fsmount, move_mount; Linux 5.2) through ctypes.

Each option is one fsconfig call, so a mount is not bound by the single page that mount(2)'s data
string gets, and a path needs no escaping of ',' or ':'. Nothing here depends on the cwd, which the
daemon's threads share. The syscall numbers are the same on every architecture but alpha.
"""
from __future__ import annotations

import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 429, 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100


def _syscall(number: int, *args) -> int:
    # Every argument as a C long or pointer: the call is variadic, so a bare int would go as a C int.
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = _libc.syscall(ctypes.c_long(number), *converted)
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


class FsContext:
    """One filesystem being configured: `set(key, value)` per option, then `mount_at(target)`."""

    def __init__(self, fstype: str):
        self.fstype = fstype
        self.fd = _syscall(SYS_FSOPEN, fstype.encode(), FSOPEN_CLOEXEC)

    def __enter__(self) -> "FsContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def kernel_messages(self) -> list[str]:
        """What the filesystem logged on this context ("e overlay: …"): the reason behind an EINVAL."""
        out = []
        while len(out) < 16:
            try:
                out.append(os.read(self.fd, 1024).decode(errors="replace").strip())
            except OSError:     # ENODATA: the log is empty
                break
        return out

    def _fail(self, err: OSError, what: str) -> OSError:
        detail = "; ".join(self.kernel_messages()) or err.strerror
        return OSError(err.errno, f"{self.fstype} {what}: {detail}")

    def set(self, key: str, value: str) -> None:
        try:
            _syscall(SYS_FSCONFIG, self.fd, FSCONFIG_SET_STRING, key.encode(), value.encode(), 0)
        except OSError as err:
            raise self._fail(err, f"option {key}={value}") from None

    def mount_at(self, target: str) -> None:
        """Create the superblock, make it a detached mount, and attach that at `target`."""
        try:
            _syscall(SYS_FSCONFIG, self.fd, FSCONFIG_CMD_CREATE, None, None, 0)
            mount_fd = _syscall(SYS_FSMOUNT, self.fd, FSMOUNT_CLOEXEC, 0)
        except OSError as err:
            raise self._fail(err, f"mount on {target}") from None
        try:
            _syscall(SYS_MOVE_MOUNT, mount_fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        except OSError as err:
            raise OSError(err.errno, f"move_mount {self.fstype} to {target}: {err.strerror}") from None
        finally:
            os.close(mount_fd)


def supports_option(fstype: str, key: str, value: str) -> bool:
    """Whether this kernel has the new mount API and `fstype` accepts `key` (probed on a context that
    is closed unmounted, so nothing is created)."""
    try:
        with FsContext(fstype) as ctx:
            ctx.set(key, value)
        return True
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.EINVAL, errno.ENODEV, errno.EOPNOTSUPP):
            return False
        raise
