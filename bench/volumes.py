"""What volumes cost, against floors measured in the same run.

    .venv/bin/python bench/volumes.py [--quick]

(a) `run --rm busybox true` (docker-py low level: create, start, wait, remove v=1), the baseline
(b) the same with `-v /data` (an anonymous volume, nothing in the image at that path): time added to (a)
(c) the same with `-v /big` on an image holding 20 MB at /big (copied into the new volume at start):
    time added to (a), against the floor `cp -a` of the same tree into a fresh directory (+ its rm);
    split by phase: the copy-in itself (what start adds) against `cp -a` alone, and what exit and
    removal add. The container's overlay unmount at exit makes the kernel sync the upper file system
    (ovl_sync_fs), which writes the volume's fresh 20 MB out, and removing written blocks costs more
    than removing dirty pages: a second floor, `cp -a` + `sync -f` + rm, shows that part.
(d) `GET /volumes` and `GET /berth/volumes/orphans?size=0` latency with 1,000 volumes (created by 4
    client threads, pruned afterwards; also the orphans with their sizes, a directory scan each)
Targets: (c) added <= 1.5x cp -a; (d) <= 20 ms.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import start_daemon, stop_daemon  # noqa: E402  (bench/api.py)


def ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def big_tree(directory: str, total: int = 20 << 20, files: int = 400) -> None:
    """20 MB in 400 files over 20 directories (incompressible bytes, mixed modes)."""
    size = total // files
    for i in range(files):
        sub = os.path.join(directory, f"d{i % 20:02d}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"f{i:03d}")
        with open(path, "wb") as fh:
            fh.write(os.urandom(size))
        os.chmod(path, 0o640 if i % 3 else 0o755)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 5 if args.quick else 15
    nvol = 1000
    import docker
    tmp = tempfile.mkdtemp(prefix="berth-bench-volumes-")
    # its own bridge and pools (as bench/boot.py), so it runs beside other berth daemons and tests
    own_net = ("--bridge", "berth-bvol", "--bip", "10.253.0.1/22",
               "--default-address-pool", "base=10.253.16.0/20,size=24")
    proc, sock = start_daemon(tmp, extra_args=("--cgroup-parent", "berth-bench-volumes", *own_net))
    api = docker.APIClient(base_url="unix://" + sock, version="1.45", timeout=120)
    try:
        cli = [sys.executable, os.path.join(ROOT, "cli.py"), "-H", "unix://" + sock]
        bb = os.path.join(tmp, "busybox.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), bb], check=True,
                       capture_output=True)
        subprocess.run(cli + ["import", bb, "busybox:latest"], check=True, capture_output=True)
        tree = os.path.join(tmp, "tree", "big")
        big_tree(tree)
        big_tar = os.path.join(tmp, "big.tar")
        shutil.copy(bb, big_tar)
        with tarfile.open(big_tar, "a") as tf:
            tf.add(tree, arcname="big")
        subprocess.run(cli + ["import", big_tar, "big:latest"], check=True, capture_output=True)

        phases: dict[str, list] = {}

        def run(image: str, volumes=None, key: str = "") -> None:
            t0 = time.perf_counter()
            c = api.create_container(image, ["true"], volumes=volumes)
            t1 = time.perf_counter()
            api.start(c["Id"])
            t2 = time.perf_counter()
            api.wait(c["Id"])
            api.remove_container(c["Id"], v=True)
            t3 = time.perf_counter()
            phases.setdefault(key, []).append(((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000))

        cp_only, cp_sync = [], []

        def cp_a(sync: bool = False) -> None:
            dest = os.path.join(tmp, "cp-dest")
            os.makedirs(dest)
            start = time.perf_counter()
            subprocess.run(["cp", "-a", tree + "/.", dest + "/"], check=True)
            if not sync:
                cp_only.append((time.perf_counter() - start) * 1000)
            if sync:
                subprocess.run(["sync", "-f", dest], check=True)
            shutil.rmtree(dest)

        for _ in range(2):                              # warm-up
            run("busybox")
            run("big:latest", ["/big"])
        phases.clear()
        plain, empty, full, floor, floor_sync = [], [], [], [], []
        for _ in range(reps):                           # interleaved: drifts of the machine hit all alike
            plain.append(ms(lambda: run("busybox", key="plain")))
            empty.append(ms(lambda: run("busybox", ["/data"])))
            full.append(ms(lambda: run("big:latest", ["/big"], key="full")))
            floor.append(ms(cp_a))
            floor_sync.append(ms(lambda: cp_a(sync=True)))
        base = statistics.median(plain)
        added_empty = statistics.median(empty) - base
        added_full = statistics.median(full) - base
        cp_floor = statistics.median(floor)
        print(f"(a) run --rm true                       median {base:7.1f} ms")
        print(f"(b) + -v /data (empty)                  median {statistics.median(empty):7.1f} ms "
              f"(adds {added_empty:+.1f} ms)")
        print(f"(c) + -v /big (20 MB copy-in)           median {statistics.median(full):7.1f} ms "
              f"(adds {added_full:+.1f} ms)")
        print(f"    floor: cp -a of the same tree       median {cp_floor:7.1f} ms")
        print(f"    ratio added / cp -a: {added_full / cp_floor:.2f} (target <= 1.5: "
              f"{'PASS' if added_full / cp_floor <= 1.5 else 'MISS'})")

        def phase(key: str, i: int) -> float:
            return statistics.median(p[i] for p in phases[key])
        start_added = phase("full", 1) - phase("plain", 1)
        exit_added = phase("full", 2) - phase("plain", 2)
        print(f"    by phase: start (the copy-in) adds {start_added:+.1f} ms against cp -a alone "
              f"{statistics.median(cp_only):.1f} ms: {start_added / statistics.median(cp_only):.2f}x; "
              f"wait + rm -v add {exit_added:+.1f} ms")
        sync_floor = statistics.median(floor_sync)
        print(f"    floor 2: cp -a + sync -f + rm       median {sync_floor:7.1f} ms; "
              f"ratio added / floor 2: {added_full / sync_floor:.2f}")

        def make(i: int) -> None:
            c = docker.APIClient(base_url="unix://" + sock, version="1.45", timeout=120)
            try:
                for j in range(i, nvol, 4):
                    c.create_volume(f"bench{j:04d}", labels={"n": str(j % 10)})
            finally:
                c.close()
        made = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(make, range(4)))
        made = time.perf_counter() - made
        assert len(api.volumes()["Volumes"]) == nvol
        for _ in range(3):
            api.volumes()
        ls = [ms(lambda: api.volumes()) for _ in range(reps * 2)]
        orphans_url = api._url("/berth/volumes/orphans")
        orph = [ms(lambda: api._result(api._get(orphans_url, params={"size": "0"}), True))
                for _ in range(reps * 2)]
        orph_size = [ms(lambda: api._result(api._get(orphans_url, params={"size": "1"}), True))
                     for _ in range(max(3, reps // 2))]
        verdict = lambda v: "PASS" if statistics.median(v) <= 20 else "MISS"   # noqa: E731
        print(f"(d) GET /volumes, {nvol} volumes         median {statistics.median(ls):7.1f} ms "
              f"(target <= 20: {verdict(ls)})")
        print(f"    GET /berth/volumes/orphans?size=0   median {statistics.median(orph):7.1f} ms "
              f"(target <= 20: {verdict(orph)})")
        print(f"    ... with sizes (a scan per volume)  median {statistics.median(orph_size):7.1f} ms")
        print(f"    (the {nvol} volumes were created in {made:.1f} s)")
        gone = time.perf_counter()
        api.prune_volumes(filters={"all": True})
        print(f"    volume prune -a of {nvol}: {time.perf_counter() - gone:.1f} s")
    finally:
        api.close()
        stop_daemon(proc)
        for d in os.listdir("/sys/fs/cgroup"):
            path = os.path.join("/sys/fs/cgroup", d, "berth-bench-volumes")
            if os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
