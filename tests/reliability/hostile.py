"""A corpus of hostile tar archives, generated in code, and the three ways to deliver each one.

cases(canary) -> {name: (tar bytes, expected)} where expected is "refused" (a 4xx with a message),
"too-large" (413) or "harmless" (may be accepted, but must not touch the host). `canary` is an absolute
host directory the archives aim at.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

DEPTH = 12    # as the chain: s/s/.../t -> ../ x 12, deeper than any staging directory


def entry(name, kind="file", data=b"x", link="", size=None, pax=None):
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                 "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                 "fifo": tarfile.FIFOTYPE}[kind]
    info.linkname = link
    info.mode = 0o755 if kind == "dir" else 0o644
    if pax:
        info.pax_headers = pax
    if kind == "file":
        info.size = len(data) if size is None else size
    return info, (data if kind == "file" else None)


def make_tar(*entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            if data is not None and len(data) != info.size:   # a header that lies about its size
                tar.fileobj.write(info.tobuf(fmt, tar.encoding, tar.errors))
                tar.fileobj.write(data + b"\0" * (-len(data) % 512))
                tar.offset += 512 + len(data) + (-len(data) % 512)
                continue
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _chksum(block: bytearray) -> bytearray:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return block


def gnu_sparse(name: str, realsize: int, data: bytes = b"real data") -> bytes:
    """An old GNU 'S' entry: one chunk of data at offset 0, the rest a hole up to `realsize`."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[156:157] = b"S"
    block[386:398] = b"%011o\0" % 0                 # sparse[0].offset
    block[398:410] = b"%011o\0" % len(data)         # sparse[0].numbytes
    block[483:495] = b"%011o\0" % realsize          # realsize
    body = bytes(_chksum(block)) + data + b"\0" * (-len(data) % 512)
    return body + b"\0" * 1024


def pax_sparse(name: str, realsize: int, version: str, data: bytes = b"real data") -> bytes:
    """GNU sparse in PAX headers, formats 0.1 (GNU.sparse.map) and 1.0 (map in the data)."""
    if version == "0.1":
        pax = {"GNU.sparse.size": str(realsize), "GNU.sparse.numblocks": "1",
               "GNU.sparse.map": f"0,{len(data)}", "GNU.sparse.name": name}
        payload = data
    else:
        pax = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
               "GNU.sparse.realsize": str(realsize)}
        sparse_map = f"1\n0\n{len(data)}\n".encode()
        payload = sparse_map + b"\0" * (-len(sparse_map) % 512) + data
    info = tarfile.TarInfo("GNUSparseFile.0/" + name)
    info.size = len(payload)
    info.pax_headers = pax
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def gzip_bomb(size: int) -> bytes:
    """A gzip'd tar holding one file of `size` zero bytes: tiny on the wire."""
    zeros = bytes(1 << 20)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("zeros")
        info.size = size
        gz.write(info.tobuf(tarfile.PAX_FORMAT))
        for _ in range(size >> 20):
            gz.write(zeros)
        gz.write(bytes(1024))
    return raw.getvalue()


def cases(canary: str) -> dict[str, tuple[bytes, str]]:
    rel = canary.lstrip("/")
    victim = canary + "/victim"
    up = "../" * DEPTH
    chain = "/".join(["s"] * DEPTH)
    out = {
        "issue-chain": (make_tar(entry("s", "sym", link="."), entry(f"{chain}/t", "sym", link=up),
                                 entry(f"t/{rel}/x-pwned", data=b"pwned")), "refused"),
        "symlink-abs-then-write": (make_tar(entry("l", "sym", link=canary), entry("l/x", data=b"x")), "refused"),
        "symlink-rel-then-write": (make_tar(entry("l", "sym", link=up + rel), entry("l/x", data=b"x")), "refused"),
        "symlink-loop": (make_tar(entry("a", "sym", link="b"), entry("b", "sym", link="a"),
                                  entry("a/x", data=b"x")), "refused"),
        "symlink-then-dir": (make_tar(entry("l", "sym", link=canary), entry("l/sub", "dir")), "refused"),
        "dir-replaced-by-symlink": (make_tar(entry("d", "dir"), entry("d", "sym", link=canary),
                                             entry("d/x", data=b"x")), "refused"),
        "symlink-then-file-same-name": (make_tar(entry("f", "sym", link=victim),
                                                 entry("f", data=b"overwritten")), "harmless"),
        "hardlink-out-rel": (make_tar(entry("h", "hard", link=up + rel + "/victim")), "refused"),
        "hardlink-out-abs": (make_tar(entry("h", "hard", link=victim)), "refused"),
        "hardlink-through-symlink": (make_tar(entry("l", "sym", link=canary),
                                              entry("h", "hard", link="l/victim")), "refused"),
        "hardlink-to-symlink-out": (make_tar(entry("l", "sym", link=victim), entry("h", "hard", link="l"),
                                             entry("h", data=b"overwritten")), "harmless"),
        "chardev": (make_tar(entry("null", "chr")), "refused"),
        "blockdev": (make_tar(entry("sda", "blk")), "refused"),
        "sparse-gnu-2g": (gnu_sparse("big", 2 << 30), "refused"),
        "sparse-gnu-1t": (gnu_sparse("big", 1 << 40), "refused"),
        "sparse-pax01-1t": (pax_sparse("big", 1 << 40, "0.1"), "refused"),
        "sparse-pax10-1t": (pax_sparse("big", 1 << 40, "1.0"), "refused"),
        "long-name": (make_tar(entry("n" * 5000, data=b"x")), "refused"),
        "huge-pax-header": (make_tar(entry("p", data=b"x", pax={"comment": "c" * (2 << 20)})), "refused"),
        "claims-100g": (make_tar(entry("big", data=b"tiny", size=100 << 30)), "too-large"),
    }
    for i, name in enumerate(["../x", "a/../../x", "a/b/../../../x", "./../x", "a/..//../x"]):
        out[f"dotdot-{i}"] = (make_tar(entry(name, data=b"x")), "refused")
    out["dotdot-symlink-target-then-write"] = (make_tar(entry("a/l", "sym", link="../../" + rel),
                                                        entry("a/l/x", data=b"x")), "refused")
    out["absolute"] = (make_tar(entry(victim, data=b"overwritten")), "refused")
    return out


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def as_layer_in_load(layer: bytes) -> bytes:
    """A Docker legacy-format load archive whose one layer is `layer` (diff_id matching)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id(layer)]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["hostile:layer"],
                            "Layers": ["l0/layer.tar"]}]).encode()
    return make_tar(entry("l0", "dir"), entry("l0/layer.tar", data=layer), entry(config_name, data=config),
                    entry("manifest.json", data=manifest))


def as_outer_load(hostile: bytes) -> bytes:
    """The hostile entries as the load archive itself: all of it is staged before the manifest is
    looked for, so every entry reaches the outer-archive extractor (and the load then fails)."""
    return hostile


def snapshot(path: str) -> dict:
    """Every entry under path with its type, mode, size, mtime and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out
