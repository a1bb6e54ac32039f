"""rm and container prune."""
from __future__ import annotations

import os
import shutil

from app.common.filters import labels_match
from app.common.fsutil import dir_size
from app.errors import Conflict, NotFound
from app.projections.containers import Container
from app.events.model import NewEvent
from app.projections.containers import container_ids
from app.runtime import faults
from app.runtime.containers import recovery


class RemoveMixin:
    """Containers.remove, prune (mixed into the service)."""

    def remove(self, ref: str, force: bool, volumes: bool = False) -> None:
        """The state is checked and the container destroyed under its lock, so a start cannot slip in
        between (that once destroyed a running container without a die). A start in flight holds
        that lock, so `rm -f` cancels it before taking the lock (the start then undoes itself and
        lets go). A forced removal kills outside the lock, because seeing the exit needs the
        watcher, and then checks again."""
        cid = self.resolve(ref).id
        killed = force and self._cancel_start(cid)      # a start in flight (maybe hanging) is ended first
        while True:
            with self._locked(cid):
                row = self.get(cid)
                if row is None:
                    if killed:
                        return              # AutoRemove removed it on its exit (`rm -f` of a `--rm` container)
                    raise NotFound(f"No such container: {ref}")
                if row.state not in ("running", "paused", "restarting"):
                    self._destroy(row, volumes)
                    return
                if not force and row.state == "paused":
                    raise Conflict(f'cannot remove container "/{row.name}": container is paused and must be '
                                   "unpaused first")
                if not force:
                    state = "restarting" if row.state == "restarting" else "running"
                    raise Conflict(f'cannot remove container "/{row.name}": container is {state}: stop the '
                                   "container before removing or force remove")
            recovery.mark_removing(self, cid)           # a cut from here on is finished at the next boot
            try:
                self.kill(cid, 9)
            except Conflict:
                pass
            faults.point("rm:after-kill")
            self._thaw(cid)
            self.wait_exit(cid, None)
            killed = True

    def _destroy(self, row: Container, volumes: bool = False) -> None:
        """Remove a container that is not running (caller holds its lock). The removal marker makes
        the next boot finish a removal cut at any step (app/runtime/recovery.py)."""
        cid = row.id
        bundle = self.bundle(cid)
        recovery.mark_removing(self, cid)
        self.overlay.unmount(bundle)
        faults.point("rm:after-unmount")
        if self.runc.known(cid):                # finish() has usually deleted it already
            self.runc.delete(cid, force=True)
        faults.point("rm:after-runc-delete")
        self.monitor.kill(cid, bundle)          # nothing may outlive the container: a stray conmon,
        self.cgroups.kill(cid)   # or cgroups a cut start left
        self.monitor.cleanup(cid, bundle)
        shutil.rmtree(bundle, ignore_errors=True)
        faults.point("rm:before-destroy")
        points = self.volumes.points_of(cid)
        # network disconnects free its addresses, in the destroy's transaction
        self._record(row, self.network.release_events(cid) + [NewEvent("container", "destroy", cid, self._attrs(row))])
        self.volumes.removed(points, volumes or bool(row.host_config.get("AutoRemove")))   # rm -v, run --rm
        recovery.unmark_removing(self, cid)
        self._release_attach_waiters(row.id)
        with self._tables_lock:
            self._hubs.pop(row.id, None)
        self._notify_changed(cid)           # `wait?condition=removed`

    def _release_attach_waiters(self, cid: str) -> None:
        with self._tables_lock:
            waiters = self._attach_waiters.pop(cid, [])
        for waiter in waiters:
            waiter.ready.set()              # an attach waiting for a start that will not come

    def prune(self, until_ns: int | None, labels: set[str], not_labels: set[str]) -> dict:
        """`docker container prune`: remove every container that is not running (created, exited,
        dead), narrowed by `until` (created before) and `label` / `label!` filters, as moby does."""
        deleted, reclaimed = [], 0
        for cid in container_ids(self.events, exclude=("running", "paused", "restarting")):
            row = self.get(cid)
            if row is None:
                continue
            row_labels = row.labels
            if until_ns is not None and row.created_nano >= until_ns:
                continue
            if labels and not labels_match(labels, row_labels):
                continue
            if not_labels and any(labels_match([want], row_labels) for want in not_labels):
                continue
            size = dir_size(os.path.join(self.bundle(cid), "upper"))
            try:
                self.remove(cid, force=False)
            except (Conflict, NotFound):
                continue                    # started or removed meanwhile
            deleted.append(cid)
            reclaimed += size
        self.events.append([NewEvent("container", "prune", "", {"reclaimed": str(reclaimed)})])
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
