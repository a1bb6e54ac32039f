"""The `local` volume driver: a directory <data-root>/volumes/<name>/_data, or, with `-o type=…
device=… o=…`, a file system mounted there at first use and unmounted when the last user is gone
(moby daemon/volume/local)."""
from __future__ import annotations

import os
import secrets
import shutil

from app.common.fsutil import dir_size
from app.errors import InvalidParameter
from app.runtime.host.errors import HostError
from app.runtime.host.treecopy import copy_tree

VALID_OPTS = ("type", "o", "device", "size")
MANDATORY = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


class LocalDriver:
    name = "local"

    def __init__(self, root: str, mounts):
        self.root = root                 # <data-root>/volumes
        self.mounts = mounts             # app/runtime/host/volmount.py VolumeMounts (or a fake)
        os.makedirs(root, mode=0o701, exist_ok=True)

    def path(self, name: str) -> str:
        return f"{self.root}/{name}/_data"          # (a name never holds a slash: check_volume_name)

    def validate(self, opts: dict, name: str = "") -> None:
        """moby's validateOpts, then a probe mount of what the kernel will be asked at first use, on
        a scratch directory, so an option the kernel refuses fails the create and creates nothing."""
        for key in opts:
            if key not in VALID_OPTS:
                raise InvalidParameter(f'invalid option: "{key}"')
        if opts.get("size"):
            raise InvalidParameter("quota size requested but no quota support")
        for key, needs in MANDATORY.items():
            if key in opts:
                for need in needs:
                    if need not in opts:
                        raise InvalidParameter(f'missing required option: "{need}"')
        if not opts.get("type"):
            return
        if "bind" in (opts.get("o") or "").split(","):
            device = opts.get("device") or ""
            if not device.startswith("/") or not os.path.isdir(device):
                raise InvalidParameter(f"failed to mount local volume: mount {device}: no such file or directory")
        probe = os.path.join(self.root, ".probe-" + secrets.token_hex(6))
        os.mkdir(probe, 0o700)
        try:
            try:
                self.mounts.mount(opts["device"], probe, opts["type"], opts.get("o") or "")
            except HostError as err:
                raise InvalidParameter(str(err).replace(probe, self.path(name) if name else probe)) from None
            self.mounts.unmount(probe)
        finally:
            os.rmdir(probe)

    @staticmethod
    def needs_mount(opts: dict) -> bool:
        return bool(opts.get("type"))

    def ensure(self, name: str) -> str:
        path = self.path(name)
        os.makedirs(os.path.dirname(path), mode=0o701, exist_ok=True)
        os.makedirs(path, mode=0o755, exist_ok=True)
        return path

    def activate(self, name: str, opts: dict) -> str:
        """The volume ready for a container: its directory, its file system mounted when it has one."""
        path = self.ensure(name)
        if self.needs_mount(opts) and not self.mounts.is_mounted(path):
            self.mounts.mount(opts["device"], path, opts["type"], opts.get("o") or "")
        return path

    def deactivate(self, name: str, opts: dict) -> None:
        if self.needs_mount(opts):
            self.mounts.unmount(self.path(name))

    def remove(self, name: str, opts: dict) -> None:
        """The volume's directory goes; a bind-mounted device's content is never touched."""
        path = self.path(name)
        self.mounts.unmount(path)
        if self.mounts.is_mounted(path):
            raise HostError(f"unable to remove volume {name}: still mounted")
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def size(self, name: str) -> int:
        return dir_size(self.path(name))

    def is_empty(self, name: str) -> bool:
        try:
            with os.scandir(self.path(name)) as it:
                return next(it, None) is None
        except FileNotFoundError:
            return True

    def names_on_disk(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def drop_probes(self) -> None:
        for n in os.listdir(self.root):
            if n.startswith(".probe-"):
                self.mounts.unmount(os.path.join(self.root, n))
                shutil.rmtree(os.path.join(self.root, n), ignore_errors=True)


def copy_in(source_fd: int, dest: str) -> None:
    """The image's content at a volume's path copied into the empty volume: ownership, modes,
    timestamps, xattrs, symlinks and hard links kept (`cp -a`). The source is a directory fd opened
    inside the container's root (rootpath.open_dir: no symlink leads out of it); treecopy walks it
    fd by fd with O_NOFOLLOW and sendfile(2) (app/runtime/host/treecopy.py)."""
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        copy_tree(source_fd, dest_fd)
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        raise HostError(f"copying the image's content into the volume: {err.strerror}{where}") from None
    finally:
        os.close(dest_fd)
