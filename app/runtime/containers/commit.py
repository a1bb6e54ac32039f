"""`docker commit`: a new image from a container's changes (moby's daemon/commit.go).

The new layer is the container's overlay upper dir written as a layer tar (whiteouts and opaque
directories as `.wh.` entries; the mount points runc makes, /etc/hostname and the like, left out as
`docker diff` leaves them out) and stored through the image store as an import's layer is. The image
config is the container's config, overridden by the request's and then by the `changes` lines, with
a history entry appended to the parent image's. A running container is paused while its upper dir is
read, unless pause=false; the pause and unpause are the usual events. Nothing is made before the
reference and the changes are known good, and the image appears in one append (its arrival, tag and
the container's `commit` event), after its files are in place.
"""
from __future__ import annotations

import os
import threading
import time

from app.common.reference import ReferenceError, parse_reference
from app.common.timeparse import rfc3339_nano
from app.errors import Conflict, InvalidParameter
from app.events.model import NewEvent
from app.runtime.containers.fs import _runtime_made
from app.runtime.host import hostinfo
from app.runtime.host.runc import RuncError
from app.runtime.images.config import apply_changes, canonical_json
from app.runtime.images.store import chain_ids

EMPTY_TAR = 1024            # a tar with no entry: its two end blocks

CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
               "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
               "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
               "StopTimeout", "Shell")


def _empty(value) -> bool:
    return value in (None, "", [], {}, False, 0)


def merge_config(user: dict, base: dict) -> dict:
    """moby's merge(userConf, imageConf) for commit: what the request leaves empty comes from the
    container; Env and Labels merge key by key, ExposedPorts and Volumes are unions, Cmd is inherited
    only when neither Cmd nor Entrypoint is given."""
    out = {k: base.get(k) for k in CONFIG_KEYS if k in base}
    for key, value in user.items():
        if key in ("Env", "Labels", "ExposedPorts", "Volumes", "Cmd", "Entrypoint") or _empty(value):
            continue
        out[key] = value
    env = list(base.get("Env") or [])
    for entry in user.get("Env") or []:
        name = entry.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != name] + [entry]
    out["Env"] = env or None
    for key in ("Labels", "ExposedPorts", "Volumes"):
        merged = {**(base.get(key) or {}), **(user.get(key) or {})}
        out[key] = merged or None
    if user.get("Entrypoint"):
        out["Entrypoint"] = user["Entrypoint"]
        out["Cmd"] = user.get("Cmd") or None
    elif user.get("Cmd"):
        out["Cmd"] = user["Cmd"]
        out["Entrypoint"] = base.get("Entrypoint")
    return out


class CommitMixin:
    """POST /commit (mixed into the service)."""

    def commit(self, ref: str, repo: str | None, tag: str | None, author: str, comment: str, pause: bool,
               changes: list[str], config: dict | None) -> str:
        row = self.resolve(ref)
        if row.state in ("removing", "dead"):
            raise Conflict(f"You cannot commit container {row.id} which is {row.state}")
        reference = None
        if repo:
            try:
                reference = parse_reference(f"{repo}:{tag}" if tag else repo).with_default_tag()
            except ReferenceError as err:
                raise InvalidParameter(str(err)) from err
            if reference.digest:
                raise InvalidParameter("invalid reference format")
        user = apply_changes(config or {}, changes)
        images = self.images
        parent, _ = images.resolve(row.image_id)
        image_cfg = parent.config.get("config") or {}
        effective = {**image_cfg, **{k: v for k, v in (row.config or {}).items()
                                     if k in CONFIG_KEYS and not _empty(v)}}
        effective["Hostname"] = (row.config or {}).get("Hostname") or row.id[:12]
        effective["Image"] = row.image
        new_config = merge_config(user, effective)

        paused = False
        if pause and row.state == "running":
            try:
                self.pause(row.id)
                paused = True
            except (Conflict, RuncError):
                pass            # it exited (or was paused) meanwhile: moby ignores this too
        try:
            staged = self._stage_upper(row)
        finally:
            if paused:
                try:
                    self.unpause(row.id)
                except (Conflict, RuncError):
                    pass            # it stopped meanwhile
        try:
            return self._commit_image(row, parent, reference, author, comment, new_config, effective, staged)
        finally:
            images.store.discard(staged)

    def _stage_upper(self, row):
        """The container's changes as a staged layer (tar kept as its blob, extracted as its diff)."""
        from app.runtime.images.layers import write_layer_tar
        upper = os.path.join(self.bundle(row.id), "upper")
        if not os.path.isdir(upper):
            os.makedirs(upper, 0o755, exist_ok=True)
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def produce():
            try:
                with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
                    write_layer_tar(upper, out, skip=_runtime_made)
            except BaseException as err:  # noqa: BLE001 - reported below
                failure.append(err)

        writer = threading.Thread(target=produce, name=f"commit {row.id[:12]}", daemon=True)
        writer.start()
        try:
            with os.fdopen(read_fd, "rb") as src:
                staged = self.images.store.stage_layer(src)
        finally:
            writer.join()
        if failure:
            self.images.store.discard(staged)
            raise failure[0]
        return staged

    def _commit_image(self, row, parent, reference, author, comment, new_config, effective, staged) -> str:
        from app.runtime.containers.service import audit_stream
        images = self.images
        pcfg = parent.config
        now = rfc3339_nano(time.time_ns())
        empty = staged.tar_size <= EMPTY_TAR
        diff_ids = list((pcfg.get("rootfs") or {}).get("diff_ids") or [])
        history = list(pcfg.get("history") or [])
        entry = {"created": now}
        if author:
            entry["author"] = author
        entry["created_by"] = " ".join((effective.get("Entrypoint") or []) + (effective.get("Cmd") or []))
        if comment:
            entry["comment"] = comment
        if empty:
            entry["empty_layer"] = True
        history.append(entry)
        parent_diffs = list(diff_ids)
        if not empty:
            diff_ids.append(staged.diff_id)
        container_config = {k: effective.get(k) for k in CONFIG_KEYS if k in effective}
        cfg = {"architecture": pcfg.get("architecture") or hostinfo.go_arch(), "author": author,
               "comment": comment, "config": new_config, "container": row.id,
               "container_config": container_config, "created": now, "docker_version": "",
               "history": history, "os": pcfg.get("os", "linux"),
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if pcfg.get("variant"):
            cfg["variant"] = pcfg["variant"]
        with images.lock:
            if not empty:
                parent_chain = chain_ids(parent_diffs)[-1] if parent_diffs else None
                images.store.commit_layer(staged, parent_chain)
            image_id = images.store.put_blob(canonical_json(cfg))
            arrival = images._arrival("commit", image_id, cfg, parent.size + (0 if empty else staged.size))
            arrival.payload["parent"] = parent.id
            events = [arrival]
            ref_text = ""
            if reference is not None:
                ref_text = reference.familiar()
                events += images.tag_events(image_id, ref_text, cfg)
            events.append(NewEvent("container", "commit", row.id,
                                   {**self._attrs(row), "comment": comment, "imageID": image_id,
                                    "imageRef": ref_text}, stream=audit_stream(row.id)))
            self.events.append(events)
        return image_id
