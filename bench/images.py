"""Image throughput against GNU tar, measured side by side in the same run.

    .venv/bin/python bench/images.py [--quick]

- import: POST /images/create?fromSrc=- of a ~200 MB tar  vs  `tar -xf` of the same tar
- load:   POST /images/load of a 3-layer ~200 MB archive   vs  `tar -xf` of its three layer tars
- save:   GET /images/get of that image to a file           vs  `tar -cf` of the three layer trees
- entries: POST /images/create of a tar of 20,000 small files  vs  `tar -xf` of it (per-entry cost of
  the safe extractor: openat2 per new directory, dir_fd-relative creates)
Target: berth <= 2x tar's time. Medians of 3 runs (1 with --quick, on ~50 MB). Cleans up after itself.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import UnixHTTPConnection, start_daemon, stop_daemon  # noqa: E402  (bench/api.py)

MB = 1_000_000


def make_tree(path: str, total: int, seed: int) -> None:
    """Files of 64 KiB–4 MiB with distinct content, plus some small files and directories."""
    os.makedirs(path)
    block = hashlib.sha256(str(seed).encode()).digest() * 2048          # 64 KiB of pseudo-random bytes
    written, i = 0, 0
    while written < total:
        size = min(total - written, (64 << 10) * (1 + (i * 7919 + seed) % 64))
        sub = os.path.join(path, f"d{i % 8}")
        os.makedirs(sub, exist_ok=True)
        unit = i.to_bytes(8, "big") + block
        with open(os.path.join(sub, f"f{i}"), "wb") as fh:
            fh.write((unit * (size // len(unit) + 1))[:size])
        written += os.path.getsize(os.path.join(sub, f"f{i}"))
        i += 1
    for j in range(200):
        with open(os.path.join(path, f"small{j}.txt"), "w") as fh:
            fh.write(f"small file {j}\n")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tar_create(src: str, out: str) -> None:
    subprocess.run(["tar", "-C", src, "-cf", out, "."], check=True)


def tar_extract(tar: str, dest: str) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    subprocess.run(["tar", "-C", dest, "-xf", tar], check=True)


def request(sock: str, method: str, path: str, body_path: str | None = None, out_path: str | None = None) -> bytes:
    conn = UnixHTTPConnection(sock, timeout=600)
    try:
        if body_path:
            with open(body_path, "rb") as fh:
                conn.request(method, path, body=fh, headers={"Content-Type": "application/x-tar",
                                                               "Content-Length": str(os.path.getsize(body_path))})
        else:
            conn.request(method, path)
        resp = conn.getresponse()
        if out_path:
            with open(out_path, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            data = b""
        else:
            data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status} {data[:300]!r}")
        return data
    finally:
        conn.close()


def docker_archive(layer_tars: list[str], out: str) -> None:
    """A docker-archive with the given (uncompressed) layer tars, written with tarfile."""
    diff_ids = []
    for path in layer_tars:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        diff_ids.append("sha256:" + h.hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "created": "2026-01-01T00:00:00Z", "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))]}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["bench:big"],
                            "Layers": [f"l{i}/layer.tar" for i in range(len(layer_tars))]}]).encode()
    with tarfile.open(out, "w") as tar:
        for i, path in enumerate(layer_tars):
            tar.add(path, arcname=f"l{i}/layer.tar")
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def small_files_tar(path: str, count: int) -> None:
    """`count` files of 100 bytes in 100 directories: a tar whose cost is per entry, not per byte."""
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            if i % 200 == 0:
                info = tarfile.TarInfo(f"d{i // 200}")
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            info = tarfile.TarInfo(f"d{i // 200}/f{i}")
            info.size = 100
            tar.addfile(info, io.BytesIO(bytes(100)))


def main() -> int:
    quick = "--quick" in sys.argv
    total = (50 if quick else 200) * MB
    runs = 1 if quick else 3
    tmp = tempfile.mkdtemp(prefix="berth-bench-images-")
    proc = None
    try:
        trees = [os.path.join(tmp, f"tree{i}") for i in range(3)]
        for i, tree in enumerate(trees):
            make_tree(tree, total // 3, seed=i)
        layer_tars = [t + ".tar" for t in trees]
        for tree, out in zip(trees, layer_tars):
            tar_create(tree, out)
        big = os.path.join(tmp, "all.tar")
        subprocess.run(["tar", "-C", tmp, "-cf", big] + [os.path.basename(t) for t in trees], check=True)
        archive = os.path.join(tmp, "archive.tar")
        docker_archive(layer_tars, archive)
        size_mb = os.path.getsize(big) / MB

        proc, sock = start_daemon(tmp)
        scratch = os.path.join(tmp, "x")
        results = {}

        imp, imp_floor = [], []
        for _ in range(runs):
            imp_floor.append(timed(lambda: tar_extract(big, scratch)))
            imp.append(timed(lambda: request(sock, "POST", "/v1.45/images/create?fromSrc=-&repo=bench&tag=imp",
                                             body_path=big)))
            request(sock, "DELETE", "/v1.45/images/bench:imp")
        results["import"] = (statistics.median(imp), statistics.median(imp_floor))

        load, load_floor, save, save_floor = [], [], [], []
        saved = os.path.join(tmp, "saved.tar")
        for _ in range(runs):
            load_floor.append(timed(lambda: [tar_extract(t, f"{scratch}{i}") for i, t in enumerate(layer_tars)]))
            load.append(timed(lambda: request(sock, "POST", "/v1.45/images/load?quiet=1", body_path=archive)))
            save_floor.append(timed(lambda: [tar_create(t, f"{scratch}-{i}.tar") for i, t in enumerate(trees)]))
            save.append(timed(lambda: request(sock, "GET", "/v1.45/images/get?names=bench:big", out_path=saved)))
            request(sock, "DELETE", "/v1.45/images/bench:big")
        results["load"] = (statistics.median(load), statistics.median(load_floor))
        results["save"] = (statistics.median(save), statistics.median(save_floor))

        entries = os.path.join(tmp, "entries.tar")
        small_files_tar(entries, 20_000)
        ent, ent_floor = [], []
        for _ in range(runs):
            ent_floor.append(timed(lambda: tar_extract(entries, scratch)))
            ent.append(timed(lambda: request(sock, "POST", "/v1.45/images/create?fromSrc=-&repo=bench&tag=ent",
                                             body_path=entries)))
            request(sock, "DELETE", "/v1.45/images/bench:ent")
        per_entry = (statistics.median(ent) / 20_000 * 1e6, statistics.median(ent_floor) / 20_000 * 1e6)

        print(f"berth bench/images.py ({'quick' if quick else 'full'}; {size_mb:.0f} MB, 3 layers; medians of {runs})\n")
        print(f"   {'operation':<10}{'berth s':>9}{'MB/s':>9}{'tar s':>9}{'ratio':>8}   target <= 2x tar")
        for name, (berth_s, floor_s) in results.items():
            ratio = berth_s / floor_s
            print(f"   {name:<10}{berth_s:>9.2f}{size_mb / berth_s:>9.0f}{floor_s:>9.2f}{ratio:>7.2f}x"
                  f"   {'PASS' if ratio <= 2 else 'MISS'}")
        print(f"   entries   import of 20,000 small files: {per_entry[0]:.0f} us/entry, tar -xf "
              f"{per_entry[1]:.0f} us/entry ({per_entry[0] / per_entry[1]:.2f}x)")
        return 0
    finally:
        if proc is not None:
            stop_daemon(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
