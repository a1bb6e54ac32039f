"""A layer tar into an overlayfs lower dir, through the host's one safe extractor."""
from __future__ import annotations

import os
import stat
import tarfile

from app.runtime.host import safetar
from app.runtime.host.overlay import OPAQUE_XATTR
from app.runtime.images.layers import LayerError

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"


def _overlay_whiteout(target: safetar.Target, parent_fd: int, base: str, ti: tarfile.TarInfo) -> bool:
    """`.wh..wh..opq` -> the opaque xattr on its directory; `.wh.NAME` -> a 0/0 char device NAME."""
    if base == WHITEOUT_OPAQUE:
        os.setxattr(parent_fd, OPAQUE_XATTR, b"y")
        return True
    if base.startswith(WHITEOUT_META_PREFIX):
        return True                    # other AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): ignored
    hidden = base[len(WHITEOUT_PREFIX):]
    if hidden in ("", ".", ".."):
        raise LayerError(f'invalid tar entry "{ti.name}": invalid whiteout name')
    target.remove(parent_fd, hidden)
    os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
    os.chown(hidden, ti.uid, ti.gid, dir_fd=parent_fd, follow_symlinks=False)
    return True


def extract_layer(stream, dest: str, limits: safetar.Limits | None = None) -> int:
    """Extract the uncompressed tar `stream` (read sequentially, never seeked) into the existing empty
    directory `dest` as one overlayfs lower layer; returns the total bytes of regular-file content.

    Whiteouts become overlayfs whiteouts. Raises LayerError for unsafe or corrupt content (and
    safetar.ArchiveTooLarge past `limits`); dest may then hold a partial extraction that the caller
    should remove."""
    if not stat.S_ISDIR(os.lstat(dest).st_mode):
        raise NotADirectoryError(dest)
    return safetar.extract(stream, dest, limits=limits, on_whiteout=_overlay_whiteout, what="layer")
