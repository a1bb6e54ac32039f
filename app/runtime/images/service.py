"""Image commands: resolve, import, tag, delete, and the read side (list rows, inspect, history).

Reads come from the images projection; content (configs, layers) from the ImageStore. Every change is
an appended event; files are put in place before the event that makes them visible, and anything no
image references is garbage-collected (also at start-up, after a crash).
"""
from __future__ import annotations

import threading
import time
from datetime import datetime

from app.common.reference import ReferenceError, is_image_id, parse_reference
from app.common.timeparse import rfc3339_nano as rfc3339
from app.config import Config
from app.errors import ConcurrentChange, Conflict, InvalidParameter, NotFound
from app.events.model import NewEvent
from app.events.store import EventStore
from app.projections import images as q
from app.projections.containers import containers_using_image
from app.projections.images import Image
from app.runtime.host import hostinfo, safetar
from app.runtime.images.config import apply_changes, canonical_json, empty_container_config
from app.runtime.images.layers import open_decompressed
from app.runtime.images.store import ImageStore, chain_ids
from app.version import api_version_tuple


def parse_created(value: str | None) -> int:
    """An image config's RFC 3339 `created` as Unix nanoseconds (0 when absent or unreadable)."""
    if not value:
        return 0
    text = value.rstrip("Z")
    frac = 0
    if "." in text:
        text, digits = text.split(".", 1)
        zone = ""
        for sep in "+-":
            if sep in digits:
                digits, zone = digits.split(sep, 1)[0], sep + digits.split(sep, 1)[1]
        frac = int((digits + "000000000")[:9]) if digits.isdigit() else 0
        text += zone
    try:
        dt = datetime.fromisoformat(text if ("+" in text[10:] or "-" in text[10:]) else text + "+00:00")
    except ValueError:
        return 0
    return int(dt.timestamp()) * 1_000_000_000 + frac


class Images:
    def __init__(self, events: EventStore, root: str, config: Config):
        self.events = events
        self.config = config
        self.store = ImageStore(root)
        # One image change at a time: commit files, append events, collect garbage. Uploads stream
        # into private staging directories outside this lock.
        self.lock = threading.RLock()

    def boot(self) -> None:
        """Boot: drop layers and blobs no image names (left by an import or delete cut short)."""
        with self.lock:
            self.collect_garbage()

    def limits(self) -> safetar.Limits:
        """The daemon's bounds for one uploaded archive (--max-upload-size, --min-free-space)."""
        cfg = self.config
        return safetar.Limits(max_bytes=cfg.max_upload_size, min_free=cfg.min_free_space)

    # ------------------------------------------------------------------------------ lookups

    def refs_of(self, image_id: str) -> list[str]:
        return q.refs_of(self.events, image_id)

    def resolve(self, name: str) -> tuple[Image, str | None]:
        """(image row, the reference it was named by or None for an ID); NotFound in Docker's words."""
        if not name:
            raise NotFound("No such image: ")
        candidates = []
        if is_image_id(name):
            candidates = [name if name.startswith("sha256:") else "sha256:" + name]
        if candidates:
            image = q.get_image(self.events, candidates[0])
            if image is not None:
                return image, None
        try:
            ref = parse_reference(name).with_default_tag()
            image = q.image_by_ref(self.events, ref.familiar())
            if image is not None:
                return image, ref.familiar()
        except ReferenceError:
            pass
        prefix = name[7:] if name.startswith("sha256:") else name
        if 0 < len(prefix) < 64 and all(c in "0123456789abcdef" for c in prefix):
            found = q.images_by_id_prefix(self.events, prefix)
            if len(found) == 1:
                return found[0], None
        raise NotFound(f"No such image: {name}")

    def get(self, image_id: str) -> Image | None:
        return q.get_image(self.events, image_id)

    def chains(self, image: Image) -> list[str]:
        return chain_ids(image.diff_ids)

    def layer_dirs(self, image: Image) -> list[str]:
        """The image's extracted layers, bottom first: a container's overlay lowerdirs."""
        return [self.store.diff_dir(c) for c in self.chains(image)]

    def users(self, image_id: str) -> list[tuple[str, str]]:
        """Containers created from the image: [(id, state)]."""
        return containers_using_image(self.events, image_id)

    # ------------------------------------------------------------------------------ events

    def _arrival(self, action: str, image_id: str, cfg: dict, size: int) -> NewEvent:
        labels = (cfg.get("config") or {}).get("Labels") or {}
        return NewEvent("image", action, image_id, {"name": image_id, **labels}, payload={
            "size": size, "created_nano": parse_created(cfg.get("created")), "config": cfg, "labels": labels})

    def _tag_event(self, image_id: str, ref: str, cfg: dict) -> NewEvent:
        labels = (cfg.get("config") or {}).get("Labels") or {}
        return NewEvent("image", "tag", image_id, {"name": ref, **labels})

    def tag_events(self, image_id: str, ref: str, cfg: dict) -> list[NewEvent]:
        """Tagging moves a reference: the image that had it is untagged first."""
        events = []
        current = q.ref_target(self.events, ref)
        if current == image_id:
            return [self._tag_event(image_id, ref, cfg)]   # re-tag: Docker still logs it
        if current:
            events.append(self._untag(current, ref))
        events.append(self._tag_event(image_id, ref, cfg))
        return events

    def collect_garbage(self) -> tuple[int, int]:
        keep_layers, keep_blobs = set(), set()
        for image in q.list_images(self.events):
            keep_layers.update(chain_ids(image.diff_ids))
            keep_blobs.update(image.diff_ids)
            keep_blobs.add(image.id)
        return self.store.collect_garbage(keep_layers, keep_blobs)

    # ------------------------------------------------------------------------------ import

    def import_tar(self, body, source: str, repo: str | None, tag: str | None, message: str,
                   changes: list[str]):
        """`docker import`: one layer from a (possibly compressed) tar. Yields jsonmessage dicts."""
        ref = None
        if repo:
            try:
                ref = parse_reference(repo if not tag else f"{repo}:{tag}").with_default_tag()
            except ReferenceError as err:
                raise InvalidParameter(str(err)) from err
        container_config = apply_changes(empty_container_config(), changes)
        stream, _ = open_decompressed(body)
        staged = self.store.stage_layer(stream, limits=self.limits())
        try:
            now = time.time_ns()
            comment = message or f"Imported from {source}"
            cfg = {
                "architecture": hostinfo.go_arch(), "comment": comment, "config": container_config,
                "created": rfc3339(now), "docker_version": "", "history": [{"created": rfc3339(now),
                                                                             "comment": comment}],
                "os": "linux", "rootfs": {"type": "layers", "diff_ids": [staged.diff_id]},
            }
            with self.lock:
                self.store.commit_layer(staged, None)
                image_id = self.store.put_blob(canonical_json(cfg))
                events = [self._arrival("import", image_id, cfg, staged.size)]
                if ref:
                    events += self.tag_events(image_id, ref.familiar(), cfg)
                self.events.append(events)
        finally:
            self.store.discard(staged)
        return image_id

    # ------------------------------------------------------------------------------ tag / delete

    def tag(self, name: str, repo: str, tag: str | None) -> None:
        row, _ = self.resolve(name)
        try:
            ref = parse_reference(f"{repo}:{tag}" if tag else repo).with_default_tag()
        except ReferenceError as err:
            raise InvalidParameter(str(err)) from err
        if ref.digest and not ref.tag:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        with self.lock:
            self.events.append(self.tag_events(row.id, ref.familiar(), row.config))

    def _untag(self, image_id: str, ref: str) -> NewEvent:
        # Docker's untag event names the image ID; the reference itself rides in the payload.
        return NewEvent("image", "untag", image_id, {"name": image_id}, payload={"ref": ref})

    def delete(self, name: str, force: bool, noprune: bool) -> list[dict]:
        """`docker rmi`, with moby's rules (daemon/images/image_delete.go) and wording. The rules are
        decided on a read of the containers using the image; the append checks, inside its transaction,
        that this set is still the same (a create of a container from this image may have come in
        between), and the decision is taken again once if it is not."""
        try:
            return self._delete(name, force, noprune)
        except ConcurrentChange:
            return self._delete(name, force, noprune)

    def _delete(self, name: str, force: bool, noprune: bool) -> list[dict]:
        with self.lock:
            row, by_ref = self.resolve(name)
            image_id, short = row.id, row.id[7:19]
            refs = self.refs_of(image_id)
            users = self.users(image_id)
            running = [cid for cid, state in users if state in ("running", "paused", "restarting")]

            def same_users(conn) -> None:
                if sorted(containers_using_image(conn, image_id)) != sorted(users):
                    raise ConcurrentChange(f"the containers using image {short} changed")
            events: list[NewEvent] = []
            records: list[dict] = []
            removed_last_ref = False
            if by_ref is not None:
                if not force and len(refs) == 1 and users:
                    raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force) - '
                                   f"container {users[0][0][:12]} is using its referenced image {short}")
                events.append(self._untag(image_id, by_ref))
                records.append({"Untagged": by_ref})
                if len(refs) > 1:          # other names remain: untagging was the whole job
                    self.events.append(events, guard=same_users)
                    return records
                removed_last_ref = True
                refs = []
            conflict = None
            if running:
                conflict = (f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
                            f"running container {running[0][:12]}")
            elif not force and users:
                conflict = (f"conflict: unable to delete {short} (must be forced) - image is being used by "
                            f"stopped container {users[0][0][:12]}")
            elif not force and len(refs) > 1:
                conflict = (f"conflict: unable to delete {short} (must be forced) - image is referenced in "
                            "multiple repositories")
            if conflict:
                if removed_last_ref:       # the name is gone; the image stays, dangling, as in Docker
                    self.events.append(events, guard=same_users)
                    return records
                raise Conflict(conflict)
            for ref in refs:
                events.append(self._untag(image_id, ref))
                records.append({"Untagged": ref})
            events.append(NewEvent("image", "delete", image_id, {"name": image_id}))
            records.append({"Deleted": image_id})
            kept = {c for other in q.list_images(self.events) if other.id != image_id
                    for c in chain_ids(other.diff_ids)}
            self.events.append(events, guard=same_users)
            records += [{"Deleted": chain} for chain in reversed(self.chains(row)) if chain not in kept]
            self.collect_garbage()
            return records

    # ------------------------------------------------------------------------------ read side

    def inspect(self, row: Image, api_version: str) -> dict:
        cfg = row.config
        chains = self.chains(row)
        dirs = [self.store.diff_dir(c) for c in chains]
        graph = {"LowerDir": ":".join(reversed(dirs[:-1])) or None, "UpperDir": dirs[-1] if dirs else None,
                 "MergedDir": None, "WorkDir": None}
        out = {
            "Id": row.id, "RepoTags": [r for r in self.refs_of(row.id) if "@" not in r],
            "RepoDigests": [r for r in self.refs_of(row.id) if "@" in r], "Parent": row.parent,
            "Comment": cfg.get("comment", ""), "Created": cfg.get("created") or rfc3339(0),
            "DockerVersion": cfg.get("docker_version", ""), "Author": cfg.get("author", ""),
            "Config": cfg.get("config") or empty_container_config(),
            "Architecture": cfg.get("architecture", ""), "Os": cfg.get("os", "linux"), "Size": row.size,
            "GraphDriver": {"Name": "overlay2", "Data": {k: v for k, v in graph.items() if v}},
            "RootFS": {"Type": "layers", "Layers": cfg.get("rootfs", {}).get("diff_ids") or []},
            "Metadata": {"LastTagTime": rfc3339(row.last_tag_nano) if row.last_tag_nano
                         else "0001-01-01T00:00:00Z"},
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        if api_version_tuple(api_version) < (1, 44):
            out["VirtualSize"] = row.size
        return out

    def history(self, row: Image) -> list[dict]:
        cfg = row.config
        chains = self.chains(row)
        entries = cfg.get("history") or [{"created": cfg.get("created"), "comment": cfg.get("comment", "")}]
        layer_index = 0
        rows = []
        for entry in entries:
            size = 0
            if not entry.get("empty_layer") and layer_index < len(chains):
                size = self.store.layer_size(chains[layer_index])
                layer_index += 1
            rows.append({"Id": "<missing>", "Created": parse_created(entry.get("created")) // 1_000_000_000,
                         "CreatedBy": entry.get("created_by", ""), "Tags": None, "Size": size,
                         "Comment": entry.get("comment", "")})
        rows.reverse()
        if rows:
            rows[0]["Id"] = row.id
            rows[0]["Tags"] = self.refs_of(row.id) or None
        return rows

