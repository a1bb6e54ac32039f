"""Image layers on disk, one topic per module: compression (detect and undo gzip/bzip2/xz), digest
(sha256 while the bytes stream), extract (a layer tar into an overlayfs lower dir) and tar (a directory
or an overlay diff back into a layer tar).

Layer tars carry deletions as AUFS/OCI whiteout files ('.wh.NAME', '.wh..wh..opq'); on disk, overlayfs
wants character devices 0/0 and the 'trusted.overlay.opaque' xattr. extract translates one way, tar
the other.

Typical import path (one pass over the bytes):

    stream, kind = open_decompressed(body)
    reader = DigestReader(stream, copy_to=blob_file)
    size = extract_layer(reader, layer_dir)
    reader.drain()
    diff_id = reader.digest()
"""
from app.runtime.host import safetar

LayerError = safetar.ArchiveError     # bad layer content; the message is shown to the user (HTTP 400)
CHUNK = 1 << 20                       # copy unit for file contents and raw reads

from app.runtime.images.layers.compression import open_decompressed  # noqa: E402
from app.runtime.images.layers.digest import DigestReader  # noqa: E402
from app.runtime.images.layers.extract import extract_layer  # noqa: E402
from app.runtime.images.layers.tar import write_layer_tar  # noqa: E402

__all__ = ["LayerError", "CHUNK", "open_decompressed", "DigestReader", "extract_layer", "write_layer_tar"]
