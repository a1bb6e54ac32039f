"""The volumes service: `volume create/ls/inspect/rm/prune`, orphans, and what containers need from
volumes — mount points planned at create (with the volumes they create in the same append), mounted
at start (copy-in, local-driver mounts, `mount` events), released at exit (`unmount`), and anonymous
volumes removed with their container (`rm -v`, `run --rm`).

Invariants in the append transaction (guards): a volume is removed only while no container
references it (moby's 409 `remove <name>: volume is in use - [ids]`); a create that refers to an
existing volume finds it still there.
"""
from __future__ import annotations

import functools
import logging
import os
import secrets
import time

from app.common.filters import labels_match
from app.errors import Conflict, InvalidParameter, NotFound
from app.events.model import NewEvent
from app.projections import volumes as q
from app.runtime.host import rootpath
from app.runtime.host.volmount import mount_of
from app.runtime.volumes import mounts as mp
from app.runtime.volumes.local import LocalDriver, copy_in

log = logging.getLogger("berth")
DRIVERS = ("local",)
ANONYMOUS_LABEL = "com.docker.volume.anonymous"     # moby marks volumes created without a name


def _rfc3339(ns: int) -> str:
    return _rfc3339_seconds(ns // 1_000_000_000)


@functools.lru_cache(maxsize=4096)
def _rfc3339_seconds(seconds: int) -> str:
    """(cached: time.gmtime costs several µs, and `volume ls` of 1,000 volumes asks it 1,000 times)"""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _driver_error(name: str) -> NotFound:
    return NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')


def check_propagation(source: str, propagation: str) -> None:
    """moby's ensureShared / ensureSharedOrSlave: a shared or slave bind needs a host mount that can
    propagate (here the source's mount must be shared, or shared or slave)."""
    if propagation not in ("shared", "rshared", "slave", "rslave"):
        return
    point, fields = mount_of(source)
    if propagation.endswith("shared") and "shared:" not in fields:
        raise InvalidParameter(f"path {source} is mounted on {point} but it is not a shared mount")
    if propagation.endswith("slave") and "shared:" not in fields and "master:" not in fields:
        raise InvalidParameter(f"path {source} is mounted on {point} but it is not a shared or slave mount")


class VolumeInUse(Conflict):
    def __init__(self, name: str, refs: list[str]):
        super().__init__(f"remove {name}: volume is in use - [{', '.join(refs)}]")


def _not_in_use(conn, name: str) -> None:
    refs = q.volume_refs(conn, name)
    if refs:
        raise VolumeInUse(name, refs)


class Volumes:
    def __init__(self, store, data_root: str, mounts):
        self.store = store
        self.local = LocalDriver(os.path.join(data_root, "volumes"), mounts)

    # ------------------------------------------------------------------ the volume command

    def view(self, v: q.Volume, size: bool = False) -> dict:
        out = {"CreatedAt": _rfc3339(v.created_nano), "Driver": v.driver, "Labels": v.labels or None,
               "Mountpoint": self.local.path(v.name), "Name": v.name, "Options": v.options or None,
               "Scope": "local"}
        if size:
            out["UsageData"] = {"Size": self.local.size(v.name), "RefCount": len(q.volume_refs(self.store, v.name))}
        return out

    def get(self, name: str) -> q.Volume:
        v = q.get_volume(self.store, name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def create(self, name: str, driver: str, opts: dict, labels: dict) -> dict:
        driver = driver or "local"
        if driver not in DRIVERS:
            raise _driver_error(driver)
        anonymous = not name
        if name:
            mp.check_volume_name(name)
            existing = q.get_volume(self.store, name)
            if existing is not None:            # moby returns the volume that exists
                return self.view(existing)
        else:                                   # moby: a volume without a name is anonymous (pruned by default)
            name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        opts = {str(k): str(v) for k, v in (opts or {}).items()}
        self.local.validate(opts, name)
        event = NewEvent("volume", "create", name, {"driver": driver},
                         payload={"labels": labels or {}, "options": opts, "anonymous": anonymous})

        def guard(conn):
            if q.get_volume(conn, name) is not None:
                raise Conflict(f"volume {name} was created meanwhile")
        try:
            self.store.append([event], guard=guard)
        except Conflict:
            return self.view(self.get(name))
        self.local.ensure(name)
        return self.view(self.get(name))

    def list(self, filters: dict) -> list[dict]:
        return [self.view(v) for v in self._select(filters)]

    def _select(self, filters: dict) -> list[q.Volume]:
        for key in filters:
            if key not in ("dangling", "name", "label", "driver", "label!"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = None
        for value in filters.get("dangling", ()):
            if value.lower() in ("true", "1"):
                dangling = True if dangling in (None, True) else None
            elif value.lower() in ("false", "0"):
                dangling = False if dangling in (None, False) else None
            else:
                raise InvalidParameter(f"invalid filter 'dangling={value}'")
        counts = q.ref_counts(self.store)
        out = []
        for v in q.list_volumes(self.store):
            if dangling is not None and (counts.get(v.name, 0) == 0) != dangling:
                continue
            if filters.get("name") and not any(n in v.name for n in filters["name"]):
                continue
            if filters.get("driver") and v.driver not in filters["driver"]:
                continue
            if filters.get("label") and not labels_match(set(filters["label"]), v.labels):
                continue
            if filters.get("label!") and any(labels_match({w}, v.labels) for w in filters["label!"]):
                continue
            out.append(v)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        v = q.get_volume(self.store, name)
        if v is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        self._destroy(v)

    def _destroy(self, v: q.Volume, extra: list[NewEvent] = ()) -> None:
        """The destroy event under the in-use guard, then the directory (a cut in between is finished
        at boot: a directory no volume names is removed)."""
        self.store.append([NewEvent("volume", "destroy", v.name, {"driver": v.driver}), *extra],
                          guard=lambda conn: _not_in_use(conn, v.name))
        try:
            self.local.remove(v.name, v.options)
        except Exception:  # noqa: BLE001 - the volume is gone from the log; boot sweeps the rest
            log.exception("removing volume directory %s", v.name)

    def prune(self, filters: dict) -> dict:
        """Unused volumes; anonymous ones only unless `all` (API >= 1.42, as moby)."""
        every = False
        for value in filters.get("all", ()):
            if value.lower() in ("true", "1"):
                every = True
            elif value.lower() not in ("false", "0"):
                raise InvalidParameter(f"invalid filter 'all={value}'")
        for key in filters:
            if key not in ("label", "label!", "all"):
                raise InvalidParameter(f"invalid filter '{key}'")
        rest = {k: v for k, v in filters.items() if k != "all"}
        deleted, reclaimed = [], 0
        for v in self._select({**rest, "dangling": ["true"]}):
            if not every and not v.anonymous:
                continue
            size = self.local.size(v.name)
            try:
                self._destroy(v)
            except (Conflict, NotFound):
                continue                    # taken into use meanwhile
            deleted.append(v.name)
            reclaimed += size
        self.store.append([NewEvent("volume", "prune", "", {"reclaimed": str(reclaimed)})])
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def orphans(self, with_size: bool = True) -> list[dict]:
        """Volumes no container references, answered from the projection (size: optional scan)."""
        out = []
        for v in q.orphans(self.store):
            out.append({"Name": v.name, "Driver": v.driver, "Anonymous": v.anonymous,
                        "CreatedAt": _rfc3339(v.created_nano), "OrphanedSince": _rfc3339(v.orphan_since),
                        "OrphanedSinceNano": v.orphan_since,
                        "CreatedBy": ({"Id": v.creator_id, "Name": v.creator_name, "Image": v.creator_image}
                                      if v.creator_id else None),
                        "LastUsedBy": [{"Id": i, "Name": n} for i, n in reversed(v.last_users)],
                        **({"Size": self.local.size(v.name)} if with_size else {})})
        return out

    def usage(self) -> list[dict]:
        """system df: every volume with UsageData."""
        counts = q.ref_counts(self.store)
        out = []
        for v in q.list_volumes(self.store):
            view = self.view(v)
            view["UsageData"] = {"Size": self.local.size(v.name), "RefCount": counts.get(v.name, 0)}
            out.append(view)
        return out

    # ------------------------------------------------------------------ containers: create

    def plan(self, cid: str, name_of, image_ref: str, config: dict, host_config: dict, image_cfg: dict,
             resolve_container):
        """Mount points of a new container and the volume create events that go with its create.
        Returns (points, events, guard); nothing is created until the caller appends. `name_of()`
        gives the container's name once it is chosen; `resolve_container(ref)` a container row."""
        driver = host_config.get("VolumeDriver") or ""      # for the volumes this create makes (moby)

        def volumes_from(ref: str) -> list[dict]:
            try:
                other = resolve_container(ref)
            except NotFound as err:
                raise InvalidParameter(err.message) from None
            return q.container_points(self.store, other.id)

        points = mp.plan_points(config, host_config, image_cfg.get("Volumes") or {}, volumes_from)
        new: dict[str, dict] = {}       # volume name → its create (payload)
        existing: set[str] = set()
        for p in points:
            if p["Type"] == "bind":
                if p["Spec"] == "mount" and not p.get("CreateMountpoint") and not os.path.lexists(p["Source"]):
                    raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not '
                                           f'exist: {p["Source"]}')
                continue
            if p["Type"] != "volume":
                continue
            if p["Spec"] == "volumes-from":
                existing.add(p["Name"])
                continue
            if not p["Name"]:
                p["Name"] = secrets.token_hex(32)
            v = q.get_volume(self.store, p["Name"])
            if v is None and p["Name"] not in new:
                wanted = p["Driver"] or driver or "local"
                if wanted not in DRIVERS:
                    raise _driver_error(wanted)
                p["Driver"] = wanted
                opts = {str(k): str(val) for k, val in (p.get("DriverOpts") or {}).items()}
                self.local.validate(opts, p["Name"])
                labels = {**(p.get("Labels") or {}), **({ANONYMOUS_LABEL: ""} if p["Anonymous"] else {})}
                new[p["Name"]] = {"labels": labels, "options": opts, "anonymous": p["Anonymous"]}
            elif v is not None:
                existing.add(p["Name"])
                p["Driver"] = v.driver
            p["Source"] = self.local.path(p["Name"])
            p["Driver"] = p["Driver"] or "local"
        for p in points:
            for key in ("DriverOpts", "Labels", "CreateMountpoint"):
                p.pop(key, None)

        def events() -> list[NewEvent]:
            creator = {"id": cid, "name": name_of(), "image": image_ref}
            return [NewEvent("volume", "create", n, {"driver": "local"}, payload={**payload, "creator": creator})
                    for n, payload in new.items()]

        def guard(conn) -> None:
            for n in existing:
                if q.get_volume(conn, n) is None:
                    raise Conflict(f"volume {n} was removed while the container was being created; try again")
            for n in new:
                if q.get_volume(conn, n) is not None:
                    raise Conflict(f"volume {n} was created by another request meanwhile; try again")

        return points, events, guard

    def create_warnings(self, cid: str, host_config: dict) -> list[str]:
        """The Warnings of a container create that succeeded (`z`/`Z` on a bind), also in the log."""
        warnings = mp.relabel_warnings(host_config, os.path.exists("/sys/fs/selinux/enforce"))
        for text in warnings:
            log.warning("container %s: %s", cid[:12], text)
        return warnings

    def created(self, points: list[dict]) -> None:
        """After the create's append: the new volumes' directories."""
        for p in points:
            if p["Type"] == "volume":
                self.local.ensure(p["Name"])

    # ------------------------------------------------------------------ containers: start, exit, rm

    def prepare_start(self, row, rootfs: str) -> tuple[list[dict], list[NewEvent]]:
        """Before runc create: every volume ready (copy-in into an empty one, local-driver mounts),
        missing `-v` host dirs made. Returns (OCI mounts, `mount` events for the start's append)."""
        points = q.container_points(self.store, row.id)
        events = []
        activated = []
        try:
            for p in points:
                if p["Type"] == "bind":
                    if p["Spec"] == "bind" and not os.path.lexists(p["Source"]):
                        os.makedirs(p["Source"], mode=0o755, exist_ok=True)     # moby: `-v` creates it
                    check_propagation(p["Source"], p["Propagation"])
                    continue
                if p["Type"] != "volume":
                    continue
                v = q.get_volume(self.store, p["Name"])
                if v is None:
                    raise NotFound(f"get {p['Name']}: no such volume")
                self.local.activate(v.name, v.options)
                activated.append(v)
                if p.get("CopyData") and self.local.is_empty(v.name):
                    self._copy_in(rootfs, p["Destination"], v.name)
                events.append(NewEvent("volume", "mount", v.name, {
                    "container": row.id, "destination": p["Destination"], "driver": v.driver,
                    "propagation": p["Propagation"], "read/write": str(bool(p["RW"])).lower()}))
        except BaseException:
            for v in activated:
                self._deactivate_if_unused(v.name, exclude=row.id)
            raise
        return mp.oci_mounts(points), events

    def _copy_in(self, rootfs: str, destination: str, name: str) -> None:
        root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            try:
                fd = rootpath.open_dir(root_fd, destination)
            except (FileNotFoundError, NotADirectoryError):
                return                      # nothing (or a file) there in the image: nothing to copy
            try:
                copy_in(fd, self.local.path(name))
            finally:
                os.close(fd)
        finally:
            os.close(root_fd)

    def start_failed(self, cid: str) -> None:
        """A start that did not happen: volumes it activated and nobody else uses are let go."""
        for p in q.container_points(self.store, cid):
            if p["Type"] == "volume":
                self._deactivate_if_unused(p["Name"], exclude=cid)

    def _deactivate_if_unused(self, name: str, exclude: str = "") -> None:
        v = q.get_volume(self.store, name)
        if v is None or not self.local.needs_mount(v.options):
            return
        if [c for c in q.mounted_by(self.store, name) if c != exclude]:
            return
        try:
            self.local.deactivate(v.name, v.options)
        except Exception:  # noqa: BLE001 - boot sweeps what is left
            log.exception("unmounting volume %s", name)

    def stopped(self, cid: str) -> None:
        """The container exited: `unmount` for each volume it had mounted; a local-driver mount
        with no user left is unmounted."""
        names = [p["Name"] for p in q.container_points(self.store, cid) if p["Type"] == "volume"]
        events = []
        for name in names:
            if cid in q.mounted_by(self.store, name):
                v = q.get_volume(self.store, name)
                events.append(NewEvent("volume", "unmount", name, {"container": cid,
                                                                   "driver": v.driver if v else "local"}))
        if events:
            self.store.append(events)
        for name in names:
            self._deactivate_if_unused(name)

    def points_of(self, cid: str) -> list[dict]:
        """The container's mount points (read before its destroy takes them out of the projection)."""
        return q.container_points(self.store, cid)

    def removed(self, points: list[dict], remove_anonymous: bool) -> None:
        """After the container's destroy: with `-v` (or --rm) its anonymous volumes that no other
        container references go too; named volumes and binds never."""
        if not remove_anonymous:
            return
        for p in points:
            if p["Type"] != "volume" or not p.get("Anonymous") or p.get("Spec") == "volumes-from":
                continue
            v = q.get_volume(self.store, p["Name"])
            if v is None or not v.anonymous:
                continue
            try:
                self._destroy(v)
            except Conflict:
                pass                        # another container still references it (--volumes-from)

    def holding_mount(self, cid: str, path: str) -> tuple[str, str, bool] | None:
        """`docker cp` into or out of a mount: (host directory, the path inside it, writable) of the
        container's volume or bind mount that holds `path` (the innermost), or None (the rootfs)."""
        absolute = rootpath.abs_path(path)
        best = None
        for p in q.container_points(self.store, cid):
            dest = p["Destination"]
            if p["Type"] == "tmpfs" or not (absolute == dest or absolute.startswith(dest.rstrip("/") + "/")):
                continue
            if best is None or len(dest) > len(best["Destination"]):
                best = p
        if best is None or not os.path.isdir(best["Source"]):
            return None
        rest = absolute[len(best["Destination"]):] or "/"
        return best["Source"], rest if rest.startswith("/") else "/" + rest, bool(best["RW"])

    def container_mounts(self, cid: str) -> list[dict]:
        return [mp.inspect_view(p) for p in q.container_points(self.store, cid) if p["Spec"] != "tmpfs"]

    # ------------------------------------------------------------------ boot

    def reconcile(self, live_ids: set[str]) -> list[str]:
        """Boot, after containers' reconcile: `unmount` for volumes still recorded as mounted by a
        container that is no longer running; local-driver mounts nobody uses unmounted; directories
        no volume names (a removal cut short) removed; scratch probes dropped. Returns the host
        pieces removed that the log did not explain."""
        cleaned: list[str] = []
        self.local.drop_probes()
        known = {v.name: v for v in q.list_volumes(self.store)}
        events = []
        for v in known.values():
            for cid in q.mounted_by(self.store, v.name):
                if cid not in live_ids:
                    events.append(NewEvent("volume", "unmount", v.name, {"container": cid, "driver": v.driver}))
        if events:
            self.store.append(events)
        for v in known.values():
            if self.local.needs_mount(v.options) and not q.mounted_by(self.store, v.name):
                try:
                    if self.local.mounts.is_mounted(self.local.path(v.name)):
                        cleaned.append(f"the {v.options.get('type')} mount of volume {v.name}, which no container uses")
                    self.local.deactivate(v.name, v.options)
                except Exception:  # noqa: BLE001
                    log.exception("unmounting volume %s", v.name)
        for name in self.local.names_on_disk():
            if name not in known:
                cleaned.append(f"the directory of volume {name}, which the log does not know")
                try:
                    self.local.remove(name, {})
                except Exception:  # noqa: BLE001
                    log.exception("removing stray volume directory %s", name)
        return cleaned

