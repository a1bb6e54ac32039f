"""Overlay rootfs mounts: how many layers fit, and what a mount costs for 1 vs 120 layers.

    .venv/bin/python bench/overlay.py [--quick]

The layer and container dirs are made under a scratch root /tmp/boXXXXXXXX, about as long as the default
data root /var/lib/berth, so the option strings are about as long as a real daemon's:
  <root>/image/layers/<64 hex>/diff  and  <root>/containers/<64 hex>/{upper,work,rootfs}
Schemes: `lowerdir+` (one fsconfig call per layer, Linux 6.8; what berth uses), mount(2) with each
layer as /proc/self/fd/N (berth's fallback on older kernels), and mount(2) with plain paths (what
berth did before; counted, as it cannot mount 120). Times are of the mount alone (mount_overlay), medians of 50 runs
(10 with --quick). Needs root. Cleans up after itself.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from app.common.defaults import DEFAULT_DATA_ROOT  # noqa: E402
from app.runtime.host.overlay import PAGE, MountError, lowerdir_plus, mount_overlay, unmount_rootfs  # noqa: E402


def scratch_root() -> str:
    # /tmp/bo…: 16 characters, against the 14 of /var/lib/berth (TMPDIR may be much longer)
    return tempfile.mkdtemp(prefix="bo", dir="/tmp")


def make_layers(root: str, count: int) -> list[str]:
    dirs = []
    for i in range(count):
        path = os.path.join(root, "image", "layers", f"{i:064x}", "diff")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, f"f{i}"), "w") as fh:
            fh.write(str(i))
        dirs.append(path)
    return dirs


def fits(lowers: list[str], cdir: str, legacy: bool) -> bool:
    try:
        mount_overlay(lowers, f"{cdir}/upper", f"{cdir}/work", f"{cdir}/rootfs", legacy=legacy)
    except MountError:
        return False
    unmount_rootfs(cdir)
    return True


def most_that_fit(lowers: list[str], cdir: str, legacy: bool) -> int:
    lo, hi = 1, len(lowers)          # fits(lo) holds; find the largest n with fits(n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(lowers[:mid], cdir, legacy) else (lo, mid - 1)
    return lo


def timed(lowers: list[str], cdir: str, legacy: bool, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        mount_overlay(lowers, f"{cdir}/upper", f"{cdir}/work", f"{cdir}/rootfs", legacy=legacy)
        samples.append(time.perf_counter() - started)
        unmount_rootfs(cdir)
    return statistics.median(samples) * 1000


def main() -> int:
    runs = 10 if "--quick" in sys.argv else 50
    root = scratch_root()
    try:
        cdir = os.path.join(root, "containers", "c" * 64)
        for d in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(cdir, d))
        lowers = make_layers(root, 501)
        tail = len(f",upperdir={cdir}/upper,workdir={cdir}/work")
        plain = (PAGE - 1 - tail - len("lowerdir=") + 1) // (len(lowers[0]) + 1)
        print(f"scratch root {root} ({len(root)} chars, like {DEFAULT_DATA_ROOT}); layer path {len(lowers[0])} chars")
        print(f"layers that fit: mount(2) with plain paths (before): {plain}")
        print(f"layers that fit: mount(2) with /proc/self/fd/N (fallback): {most_that_fit(lowers, cdir, True)}")
        if lowerdir_plus():
            print(f"layers that fit: lowerdir+ (used): {most_that_fit(lowers, cdir, False)} (overlayfs's limit)")
        else:
            print("layers that fit: lowerdir+: this kernel has none (Linux 6.8)")
        for n in (1, 120):
            line = f"mount, {n:3d} layers:"
            if lowerdir_plus():
                line += f" lowerdir+ {timed(lowers[:n], cdir, False, runs):.2f} ms,"
            line += f" mount(2) {timed(lowers[:n], cdir, True, runs):.2f} ms"
            print(line + ("" if n == 1 else " (/proc/self/fd/N)"))
    finally:
        unmount_rootfs(os.path.join(root, "containers", "c" * 64))
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
