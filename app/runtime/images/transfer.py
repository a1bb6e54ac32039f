"""`docker save` / `docker load` archives.

save writes what Docker 25+ writes: an OCI image layout (oci-layout, index.json, blobs/sha256/…) with
Docker's manifest.json and repositories beside it, layers as uncompressed tars, each blob once.
load reads that, Docker's legacy layout (<id>/layer.tar, <hex>.json) and a bare OCI layout (what
`skopeo copy … oci-archive:` writes, gzip layers included).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile

from app.common.reference import ReferenceError, parse_reference
from app.errors import InvalidParameter
from app.events.model import NewEvent
from app.runtime.images.config import canonical_json
from app.runtime.host import safetar
from app.projections.images import all_refs
from app.runtime.images.store import chain_ids
from app.runtime.images.layers import open_decompressed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CHUNK = 1 << 20


# ------------------------------------------------------------------------------------------ save

def _tar_header(name: str, size: int, mode: int = 0o644, is_dir: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.mode = 0o755 if is_dir else mode
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _pad(size: int) -> bytes:
    return b"\0" * ((512 - size % 512) % 512)


def _member(name: str, data: bytes):
    yield _tar_header(name, len(data)) + data + _pad(len(data))


def _file_member(name: str, path: str):
    size = os.path.getsize(path)
    yield _tar_header(name, size)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
    yield _pad(size)


def _save_targets(images, names: list[str]) -> dict[str, list[str]]:
    """{image id: [references to record]} in first-mentioned order, as moby's tarexport does."""
    targets: dict[str, list[str]] = {}
    for name in names:
        row, by_ref = images.resolve(name)
        refs = targets.setdefault(row.id, [])
        if by_ref is None:
            continue
        try:
            parsed = parse_reference(name)
        except ReferenceError:
            parsed = None
        if parsed is not None and parsed.tag is None and parsed.digest is None:
            # A bare repository name saves every tag of that repository.
            prefix = parsed.familiar_name + ":"
            for ref, image_id in all_refs(images.events):
                if ref.startswith(prefix):
                    targets.setdefault(image_id, [])
                    if ref not in targets[image_id]:
                        targets[image_id].append(ref)
        elif by_ref not in refs:
            refs.append(by_ref)
    return targets


def save(images, names: list[str]):
    """Resolve every name first (NotFound before any byte is sent); return a generator of tar bytes."""
    targets = _save_targets(images, names)
    rows = {image_id: images.resolve(image_id)[0] for image_id in targets}

    def generate():
        written: set[str] = set()
        manifest_json, index_manifests, repositories = [], [], {}
        yield from (_tar_header("blobs/", 0, is_dir=True), _tar_header("blobs/sha256/", 0, is_dir=True))
        for image_id, refs in targets.items():
            row = rows[image_id]
            config_bytes = images.store.read_blob(image_id)
            diff_ids = row.diff_ids
            layer_paths, layer_descs = [], []
            for diff_id in diff_ids:
                path = f"blobs/sha256/{diff_id[7:]}"
                blob = images.store.blob_path(diff_id)
                if diff_id not in written:
                    yield from _file_member(path, blob)
                    written.add(diff_id)
                layer_paths.append(path)
                layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id,
                                    "size": os.path.getsize(blob)})
            if image_id not in written:
                yield from _member(f"blobs/sha256/{image_id[7:]}", config_bytes)
                written.add(image_id)
            manifest = canonical_json({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image_id,
                           "size": len(config_bytes)},
                "layers": layer_descs})
            manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            if manifest_digest not in written:
                yield from _member(f"blobs/sha256/{manifest_digest[7:]}", manifest)
                written.add(manifest_digest)
            for ref in refs or [None]:
                desc = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
                if ref:
                    parsed = parse_reference(ref)
                    desc["annotations"] = {"io.containerd.image.name": parsed.full(),
                                           "org.opencontainers.image.ref.name": parsed.tag or ""}
                    repositories.setdefault(parsed.familiar_name, {})[parsed.tag] = \
                        (diff_ids[-1][7:] if diff_ids else image_id[7:])
                index_manifests.append(desc)
            manifest_json.append({"Config": f"blobs/sha256/{image_id[7:]}", "RepoTags": refs or None,
                                  "Layers": layer_paths})
        yield from _member("index.json", canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                         "manifests": index_manifests}))
        yield from _member("manifest.json", canonical_json(manifest_json))
        yield from _member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            yield from _member("repositories", canonical_json(repositories))
        yield b"\0" * 1024   # end-of-archive
        images.events.append([NewEvent("image", "save", image_id, {"name": image_id}) for image_id in targets])

    return generate()


# ------------------------------------------------------------------------------------------ load

MAX_JSON = 64 << 20     # manifest.json, index.json, configs: read into memory whole
MAX_LINK_HOPS = 40      # as the kernel's limit on nested symlinks


class _StagedArchive:
    """The outer archive, staged: its regular files are written (through safetar) under a private
    directory; its symlinks and hardlinks (legal in Docker's legacy layout, e.g. a layer.tar linking to
    another layer's) are never created on the host: they are kept here and resolved inside the archive."""

    def __init__(self, root: str):
        self.root = root
        self.links: dict[str, tuple[str, str]] = {}    # name -> ("sym" | "hard", link target)
        self.root_fd = -1

    def on_entry(self, parts: list[str], ti: tarfile.TarInfo) -> bool:
        name = "/".join(parts)
        if ti.issym() or ti.islnk():
            self.links[name] = ("sym" if ti.issym() else "hard", ti.linkname)
            return True
        self.links.pop(name, None)     # a later entry replaces a link of the same name
        if not (ti.isreg() or ti.isdir()):
            raise safetar.ArchiveError(f"invalid archive entry {ti.name!r}: unsupported type")
        return False

    def resolve(self, rel: str, what: str) -> str:
        """`rel` with every recorded link expanded, as a path of real files below root."""
        pending = [p for p in str(rel).split("/") if p not in ("", ".")]
        if str(rel).startswith("/"):
            raise InvalidParameter(f"invalid archive: {what} path {rel!r} escapes the archive")
        done: list[str] = []
        hops = 0
        while pending:
            comp = pending.pop(0)
            if comp == "..":
                if not done:
                    raise InvalidParameter(f"invalid archive: {what} path {rel!r} escapes the archive")
                done.pop()
                continue
            link = self.links.get("/".join(done + [comp]))
            if link is None:
                done.append(comp)
                continue
            hops += 1
            kind, target = link
            if hops > MAX_LINK_HOPS:
                raise InvalidParameter(f"invalid archive: {what} path {rel!r}: too many levels of links")
            if target.startswith("/"):
                raise InvalidParameter(f"invalid archive: {what} path {rel!r} escapes the archive")
            if kind == "hard":
                done = []              # hardlink targets are named from the archive's root
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
        return "/".join(done)

    def open(self, rel: str, what: str) -> tuple[int, str]:
        """(fd of the regular file `rel` names, its resolved path); InvalidParameter when missing."""
        resolved = self.resolve(rel, what)
        try:
            fd = safetar.open_beneath(self.root_fd, resolved or ".")
        except OSError:
            raise InvalidParameter(f"invalid archive: {what} {rel!r} is missing") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidParameter(f"invalid archive: {what} {rel!r} is missing")
        return fd, resolved

    def exists(self, rel: str) -> bool:
        try:
            os.close(self.open(rel, "file")[0])
            return True
        except InvalidParameter:
            return False


def _stage_archive(body, dest: str, limits) -> _StagedArchive:
    staged = _StagedArchive(dest)
    stream, _ = open_decompressed(body)
    safetar.extract(stream, dest, limits=limits, on_entry=staged.on_entry, what="archive")
    staged.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    return staged


def _read_json(root: _StagedArchive, rel: str, what: str):
    fd, _ = root.open(rel, what)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise InvalidParameter(f"invalid archive: {what} {rel!r} is larger than {MAX_JSON >> 20} MiB")
    try:
        return data, json.loads(data)
    except ValueError as err:
        raise InvalidParameter(f"invalid archive: {what} {rel!r} is not valid JSON") from err


def _blob_rel(digest: str) -> str:
    algo, _, value = str(digest).partition(":")
    if algo != "sha256" or len(value) != 64:
        raise InvalidParameter(f"invalid archive: bad digest {digest!r}")
    return f"blobs/sha256/{value}"


def _oci_entries(root: _StagedArchive) -> list[dict]:
    _, index = _read_json(root, "index.json", "index")
    entries = []
    pending = [(d, None) for d in index.get("manifests") or []]
    while pending:
        desc, inherited = pending.pop(0)
        annotations = desc.get("annotations") or {}
        name = annotations.get("io.containerd.image.name") or inherited
        ref_name = annotations.get("org.opencontainers.image.ref.name")
        if not name and ref_name and (":" in ref_name or "/" in ref_name):
            name = ref_name
        if desc.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            _, nested = _read_json(root, _blob_rel(desc["digest"]), "index")
            pending += [(d, name) for d in nested.get("manifests") or []
                        if (d.get("platform") or {}).get("os", "linux") == "linux"][:1]
            continue
        _, manifest = _read_json(root, _blob_rel(desc["digest"]), "manifest")
        entries.append({"Config": _blob_rel(manifest["config"]["digest"]),
                        "Layers": [_blob_rel(layer["digest"]) for layer in manifest.get("layers") or []],
                        "RepoTags": [name] if name else []})
    return entries


def load(images, body) -> list[str]:
    """Load every image of an archive; return the lines to report. All or nothing per archive."""
    work = tempfile.mkdtemp(dir=images.store.tmp)
    staged_all = []
    root = None
    limits = images.limits()
    try:
        os.mkdir(os.path.join(work, "archive"))
        root = _stage_archive(body, os.path.join(work, "archive"), limits)
        if root.exists("manifest.json"):
            _, entries = _read_json(root, "manifest.json", "manifest")
            if not isinstance(entries, list):
                raise InvalidParameter("invalid archive: manifest.json is not a list")
        elif root.exists("index.json"):
            entries = _oci_entries(root)
        else:
            raise InvalidParameter("invalid archive: neither manifest.json nor index.json found")
        # how many times each staged file is named: one named once may be moved into the store
        uses: dict[str, int] = {}
        for entry in entries:
            for rel in [entry.get("Config")] + list(entry.get("Layers") or []):
                if isinstance(rel, str):
                    try:
                        resolved = root.resolve(rel, "layer")
                    except InvalidParameter:
                        continue
                    uses[resolved] = uses.get(resolved, 0) + 1
        plans = []
        staged_by_diff: dict = {}    # diff_id -> the first StagedLayer with that content
        staged_chains: dict = {}     # chain ids staged by this archive
        for entry in entries:
            config_bytes, cfg = _read_json(root, entry["Config"], "config")
            diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
            layers = entry.get("Layers") or []
            if len(layers) != len(diff_ids):
                raise InvalidParameter(f"invalid manifest: {len(layers)} layers but the config lists "
                                       f"{len(diff_ids)} diff_ids")
            staged = []
            chains = chain_ids(diff_ids)
            for rel, diff_id, chain in zip(layers, diff_ids, chains):
                if images.store.has_layer(chain) or staged_chains.get(chain):
                    root.open(rel, "layer")   # still must be in the archive
                    staged.append(None)      # already stored, or staged earlier in this archive
                    continue
                prior = staged_by_diff.get(diff_id)
                if prior:                    # same tar under another parent chain
                    fh = open(prior.blob_tmp, "rb")
                    resolved = None
                else:
                    fd, resolved = root.open(rel, "layer")
                    fh = os.fdopen(fd, "rb")
                with fh:
                    stream, compression = open_decompressed(fh)
                    # An uncompressed layer file named once is moved into the store rather than copied.
                    movable = resolved is not None and compression == "none" and uses.get(resolved) == 1
                    layer = images.store.stage_layer(
                        stream, tar_file=os.path.join(root.root, resolved) if movable else None, limits=limits)
                staged_all.append(layer)
                if layer.diff_id != diff_id:
                    raise InvalidParameter(f"invalid archive: layer {rel!r} has diff_id {layer.diff_id}, "
                                           f"the config says {diff_id}")
                staged_by_diff.setdefault(diff_id, layer)
                staged_chains[chain] = True
                staged.append(layer)
            refs = []
            for tag in entry.get("RepoTags") or []:
                try:
                    refs.append(parse_reference(tag).with_default_tag().familiar())
                except ReferenceError as err:
                    raise InvalidParameter(f"invalid archive: bad tag {tag!r}: {err}") from err
            plans.append((config_bytes, cfg, chains, staged, refs))

        lines, events = [], []
        with images.lock:
            for config_bytes, cfg, chains, staged, refs in plans:
                parent = None
                size = 0
                for chain, layer in zip(chains, staged):
                    if layer is not None and not images.store.has_layer(chain):
                        images.store.commit_layer(layer, parent)
                    size += images.store.layer_size(chain)
                    parent = chain
                image_id = images.store.put_blob(config_bytes)
                events.append(images._arrival("load", image_id, cfg, size))
                for ref in refs:
                    events += images.tag_events(image_id, ref, cfg)
                    lines.append(f"Loaded image: {ref}")
                if not refs:
                    lines.append(f"Loaded image ID: {image_id}")
            images.events.append(events)
        return lines
    except BaseException:
        with images.lock:
            images.collect_garbage()
        raise
    finally:
        if root is not None and root.root_fd >= 0:
            os.close(root.root_fd)
        for layer in staged_all:
            images.store.discard(layer)
        shutil.rmtree(work, ignore_errors=True)

