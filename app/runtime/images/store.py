"""Content-addressed image storage under <data-root>/image/.

    blobs/sha256/<hex>          uncompressed layer tars, image configs, manifests: stored once
    layers/<chain-id hex>/diff  each layer extracted once; overlayfs uses these as lowerdirs
    layers/<chain-id hex>/layer.json   {"diff_id", "parent", "size"}
    tmp/                        staging; anything here after a crash is garbage and is removed at start

Files become visible in their final place only by rename, after they are complete; an image becomes
visible only when its event is appended (the projection is what lists images). So a crash mid-import
or mid-load leaves, at worst, unreferenced layers and blobs, which `collect_garbage` removes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass

from app.runtime.host import safetar
from app.common.fsutil import dir_size
from app.runtime.images.layers import DigestReader, LayerError, extract_layer


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Docker's ChainID: chain(L1) = diff_id(L1); chain(Ln) = sha256(chain(Ln-1) + " " + diff_id(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _hex(digest: str) -> str:
    algo, _, value = digest.partition(":")
    if algo != "sha256" or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"invalid digest {digest!r}")
    return value


@dataclass
class StagedLayer:
    diff_id: str
    size: int          # bytes of file content
    tar_size: int      # bytes of the uncompressed tar blob
    blob_tmp: str      # the uncompressed tar, to become blobs/sha256/<diff_id>
    dir_tmp: str       # the extracted tree, to become layers/<chain>/diff


class ImageStore:
    def __init__(self, root: str):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.layers = os.path.join(root, "layers")
        self.tmp = os.path.join(root, "tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        for path in (self.blobs, self.layers, self.tmp):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()  # serializes moves into place and garbage collection

    # ------------------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, _hex(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(dir=self.tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return digest

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as fh:
            return fh.read()

    # ------------------------------------------------------------------------------ layers

    def layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.layers, _hex(chain_id))

    def has_layer(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self.layer_dir(chain_id), "layer.json"))

    def layer_meta(self, chain_id: str) -> dict:
        with open(os.path.join(self.layer_dir(chain_id), "layer.json")) as fh:
            return json.load(fh)

    def diff_dir(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir(chain_id), "diff")

    def stage_layer(self, tar_stream, tar_file: str | None = None,
                    limits: safetar.Limits | None = None) -> StagedLayer:
        """Extract an uncompressed tar stream into staging, keeping the tar itself as a blob.

        `tar_file` names a file (inside the store's tmp/) that holds exactly the stream's bytes, e.g. an
        uncompressed layer unpacked from a `load` archive: it is moved into place instead of copied.
        Raises LayerError for bad content, ArchiveTooLarge past `limits` (also for bytes after the tar's
        end, which are digested); nothing is left behind in either case.
        """
        tar_stream = safetar.BoundedReader(tar_stream, limits)
        work = tempfile.mkdtemp(dir=self.tmp)
        blob_tmp = os.path.join(work, "layer.tar")
        dir_tmp = os.path.join(work, "diff")
        os.mkdir(dir_tmp, 0o755)
        try:
            if tar_file is not None:
                reader = DigestReader(tar_stream)
                size = extract_layer(reader, dir_tmp, limits)
                reader.drain()
                os.rename(tar_file, blob_tmp)
            else:
                with open(blob_tmp, "wb") as blob:
                    reader = DigestReader(tar_stream, copy_to=blob)
                    size = extract_layer(reader, dir_tmp, limits)
                    reader.drain()
            return StagedLayer(reader.digest(), size, reader.size, blob_tmp, dir_tmp)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def commit_layer(self, staged: StagedLayer, parent_chain: str | None) -> str:
        """Move a staged layer into place under its chain ID (a no-op when that layer exists)."""
        chain = staged.diff_id if parent_chain is None else chain_ids([parent_chain, staged.diff_id])[1]
        with self._lock:
            blob = self.blob_path(staged.diff_id)
            if not os.path.exists(blob):
                os.replace(staged.blob_tmp, blob)
            final = self.layer_dir(chain)
            if not self.has_layer(chain):
                shutil.rmtree(final, ignore_errors=True)  # a half-made dir from an earlier crash
                os.makedirs(final, 0o700)
                os.rename(staged.dir_tmp, os.path.join(final, "diff"))
                meta = {"diff_id": staged.diff_id, "parent": parent_chain or "", "size": staged.size}
                tmp = os.path.join(final, "layer.json.tmp")
                with open(tmp, "w") as fh:
                    json.dump(meta, fh)
                os.replace(tmp, os.path.join(final, "layer.json"))   # the layer exists from here on
        self.discard(staged)
        return chain

    def discard(self, staged: StagedLayer) -> None:
        shutil.rmtree(os.path.dirname(staged.blob_tmp), ignore_errors=True)

    # ------------------------------------------------------------------------------ garbage

    def collect_garbage(self, keep_layers: set[str], keep_blobs: set[str]) -> tuple[int, int]:
        """Remove layers and blobs no image references. Returns (layers removed, blobs removed)."""
        removed_layers = removed_blobs = 0
        with self._lock:
            keep_layer_hex = {_hex(c) for c in keep_layers}
            for name in os.listdir(self.layers):
                if name not in keep_layer_hex:
                    shutil.rmtree(os.path.join(self.layers, name), ignore_errors=True)
                    removed_layers += 1
            keep_blob_hex = {_hex(d) for d in keep_blobs}
            for name in os.listdir(self.blobs):
                if name not in keep_blob_hex:
                    os.unlink(os.path.join(self.blobs, name))
                    removed_blobs += 1
        return removed_layers, removed_blobs

    def layer_size(self, chain_id: str) -> int:
        try:
            return int(self.layer_meta(chain_id)["size"])
        except (FileNotFoundError, KeyError, ValueError):
            return dir_size(self.diff_dir(chain_id))


__all__ = ["ImageStore", "StagedLayer", "chain_ids", "LayerError"]
