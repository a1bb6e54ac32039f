"""`docker cp`: stat, read and write a path inside the container's root file system
(HEAD / GET / PUT /containers/{id}/archive), on running, stopped and created containers alike.

A container that is not running has its rootfs mounted for the operation and unmounted after, as
export does. Every path is resolved inside the root (app/runtime/host/rootpath.py); uploads go
through the safe extractor onto a directory fd of the extraction point. Events are moby's:
`archive-path` for a GET, `extract-to-dir` for a PUT, none for a HEAD.
"""
from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import stat as _stat

from app.common.timeparse import rfc3339_nano
from app.errors import Forbidden, InvalidParameter, NotFound
from app.runtime.host import rootpath, safetar


class ContainerFileNotFound(NotFound):
    def __init__(self, path: str, container: str):
        super().__init__(f"Could not find the file {path} in container {container}")


def encode_stat(stat: dict) -> str:
    """The X-Docker-Container-Path-Stat header: standard base64 of the JSON."""
    return base64.b64encode(json.dumps(stat).encode()).decode()


class ArchiveMixin:
    """HEAD / GET / PUT /containers/{id}/archive (mixed into the service)."""

    @contextlib.contextmanager
    def _root(self, row, path: str = "/"):
        """(root, its fd, `path` inside it): the container's rootfs, mounted for the operation when the
        container is not running, or the volume or bind mount that holds `path` (app/runtime/volumes)."""
        held = self.volumes.holding_mount(row.id, path)
        if held is not None:
            source, inner, _ = held
            fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                yield source, fd, inner
            finally:
                os.close(fd)
            return
        bundle = self.bundle(row.id)
        image_row, _ = self.images.resolve(row.image_id)
        layers = self.images.layer_dirs(image_row)
        with self._locked(row.id):
            mounted_here = not self.is_running(row.id)
            rootfs = self.overlay.mount(bundle, layers)
        try:
            fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                yield rootfs, fd, path
            finally:
                os.close(fd)
        finally:
            if mounted_here:
                with self._locked(row.id):
                    if not self.is_running(row.id):
                        self.overlay.unmount(bundle)

    def _lookup(self, ref: str, path: str, fd: int, inner: str | None = None) -> rootpath.Found:
        try:
            found = rootpath.lookup(fd, path if inner is None else inner)
            if inner is not None and rootpath.abs_path(inner) in ("/", "/.") and inner != path:
                found.abs_path = rootpath.abs_path(path)    # a volume's root, named as the container sees it
            return found
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerFileNotFound(path, ref) from None
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                raise ContainerFileNotFound(path, ref) from None
            raise

    def _stat_of(self, rootfs: str, fd: int, path: str, found: rootpath.Found) -> dict:
        st = found.st
        target = rootpath.link_target(fd, rootfs, path, found) if found.base and _stat.S_ISLNK(st.st_mode) \
            else ""
        return {"name": found.name, "size": st.st_size, "mode": rootpath.go_file_mode(st.st_mode),
                "mtime": rfc3339_nano(st.st_mtime_ns), "linkTarget": target}

    def archive_stat(self, ref: str, path: str) -> dict:
        """HEAD: the path's stat (moby's ContainerPathStat)."""
        row = self.resolve(ref)
        with self._root(row, path) as (rootfs, fd, inner):
            found = self._lookup(ref, path, fd, inner)
            try:
                return self._stat_of(rootfs, fd, inner, found)
            finally:
                found.close()

    def archive_get(self, ref: str, path: str, spans: bool = False):
        """GET: (stat, chunks of a tar of the path, its top entry named as the path's last element;
        with `spans`, large files as FileSpans for the server's sendfile)."""
        row = self.resolve(ref)
        ctx = self._root(row, path)
        rootfs, fd, inner = ctx.__enter__()
        try:
            found = self._lookup(ref, path, fd, inner)
            stat = self._stat_of(rootfs, fd, inner, found)
        except BaseException as err:
            ctx.__exit__(type(err), err, err.__traceback__)
            raise
        self._note(row, "archive-path")
        rebase = "." if found.name == "/" else found.name

        def chunks():
            try:
                yield from rootpath.tar_entry(found, rebase, spans)
            finally:
                found.close()
                ctx.__exit__(None, None, None)

        return stat, chunks()

    def archive_put(self, ref: str, path: str, stream, no_overwrite_dir_non_dir: bool = False,
                    copy_uid_gid: bool = False) -> None:
        """PUT: extract the uploaded tar into the directory `path` of the container."""
        row = self.resolve(ref)
        held = self.volumes.holding_mount(row.id, path)
        if held is not None and not held[2]:
            raise Forbidden("mounted volume is marked read-only")
        if row.host_config.get("ReadonlyRootfs") and held is None:
            raise Forbidden("container rootfs is marked read-only")
        with self._root(row, path) as (rootfs, fd, inner):
            try:
                dest = rootpath.open_dir(fd, inner)
            except FileNotFoundError:
                raise ContainerFileNotFound(path, ref) from None
            except NotADirectoryError:
                raise InvalidParameter("extraction point is not a directory") from None
            try:
                owner = None
                if copy_uid_gid:
                    try:
                        owner = rootpath.lookup_user(fd, (row.config or {}).get("User") or "")
                    except KeyError as err:
                        raise InvalidParameter(str(err.args[0])) from None
                safetar.extract(stream, dest, limits=self.images.limits(), on_entry=_owned_by(owner), what="container",
                                keep_kinds=path if no_overwrite_dir_non_dir else None)
            finally:
                os.close(dest)
        self._note(row, "extract-to-dir")


def _owned_by(owner: tuple[int, int] | None):
    """copyUIDGID: every entry owned by the container's user (an on_entry hook of safetar.extract)."""
    if owner is None:
        return None

    def own(parts, ti) -> bool:
        ti.uid, ti.gid = owner
        return False
    return own
