"""The container's filesystem: diff and export."""
from __future__ import annotations

import os
import threading



# Mount points runc creates in the rootfs (Docker keeps them in an "-init" layer under the container's
# own layer, so `docker diff` never lists them).
RUNTIME_MOUNT_POINTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/sys", "/dev", "/.dockerenv",
                        "/etc/mtab")


def _runtime_made(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in RUNTIME_MOUNT_POINTS)


class FsMixin:
    """docker diff and docker export (mixed into the service)."""

    def changes(self, ref: str) -> list[dict]:
        """`docker diff`: what the container changed against its image (Kind 0 = C, 1 = A, 2 = D)."""
        row = self.resolve(ref)
        image_row, _ = self.images.resolve(row.image_id)
        layers = self.images.layer_dirs(image_row)
        upper = os.path.join(self.bundle(row.id), "upper")
        if not os.path.isdir(upper):
            return []
        kinds = {"C": 0, "A": 1, "D": 2}
        walked = self.overlay.changes(upper, layers)
        found = [(kind, path) for kind, path in walked if not _runtime_made(path)]
        dropped_parents = {p for kind, p in walked if _runtime_made(p)}
        dropped_parents = {os.path.dirname(p) for p in dropped_parents}
        kept = []
        for kind, path in found:
            # a directory that only changed because the runtime put a mount point in it is not a change
            if kind == "C" and path in dropped_parents and not any(
                    other.startswith(path.rstrip("/") + "/") for _, other in found):
                continue
            kept.append({"Path": path, "Kind": kinds[kind]})
        return kept

    def export(self, ref: str):
        """`docker export`: a tar of the container's filesystem (its merged view), streamed in chunks."""
        from app.runtime.images.layers import write_layer_tar
        row = self.resolve(ref)
        cid = row.id
        bundle = self.bundle(cid)
        image_row, _ = self.images.resolve(row.image_id)
        layers = self.images.layer_dirs(image_row)
        with self._locked(cid):
            row = self.get(cid) or row      # as it is now that a start or exit cannot run in between
            mounted_here = not row.is_live
            rootfs = self.overlay.mount(bundle, layers)
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def produce():
            try:
                with os.fdopen(write_fd, "wb") as out:
                    write_layer_tar(rootfs, out)
            except BaseException as err:  # noqa: BLE001 - reported to the reader below
                failure.append(err)

        writer = threading.Thread(target=produce, name=f"export {cid[:12]}", daemon=True)
        writer.start()
        self._note(row, "export")

        def chunks():
            try:
                with os.fdopen(read_fd, "rb") as src:
                    while chunk := src.read(1 << 20):
                        yield chunk
                writer.join()
            finally:
                if mounted_here:
                    with self._locked(cid):
                        if not self.is_running(cid):
                            self.overlay.unmount(bundle)

        return chunks()
