"""Networking cost, measured side by side in one run (traffic: 127.0.0.1 and the bench daemon's own bridge).

    .venv/bin/python bench/network.py [--quick]

(a) host → container: throughput (one 64 MiB GET from busybox httpd) and connect+small-GET latency
    through the published port on 127.0.0.1 (DNAT) against directly to the container's IP. Target: the
    published path >= 0.95x the direct one (dockerd with its userland proxy: 0.50-0.91x here).
(b) container → container through the bridge: small-GET latency (nc from a `sleep` container's exec)
    against the same from inside the server's own namespace over loopback (a floor without any veth).
(c) what network setup adds to `run --rm busybox true` (docker-py low level: create, start, wait,
    remove): default bridge against --network none, interleaved. Target: <= 15 ms median.
The daemon runs with its own bridge (berth-bnch) and subnet (10.198.0.0/24); it is stopped and leaves
nothing behind.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import start_daemon, stop_daemon  # noqa: E402  (bench/api.py)

BRIDGE, BIP = "berth-bnch", "10.198.0.1/24"


def _get(host: str, port: int, path: str = "/hostname") -> tuple[float, int]:
    """(ms for connect + GET + full read, bytes)."""
    start = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    total = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    s.close()
    return (time.perf_counter() - start) * 1000, total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 30 if args.quick else 100
    runs = 10 if args.quick else 30
    import docker
    tmp = tempfile.mkdtemp(prefix="berth-bench-net-")
    proc = None
    try:
        proc, sock = start_daemon(tmp, extra_args=("--bridge", BRIDGE, "--bip", BIP,
                                                   "--cgroup-parent", "berth-bench-net"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True,
                       capture_output=True)
        api = docker.APIClient(base_url=f"unix://{sock}", version="1.45", timeout=60)
        with open(tar, "rb") as fh:
            api.import_image_from_data(fh.read(), repository="busybox", tag="latest")
        srv = api.create_container("busybox", ["sh", "-c", "mkdir /w && hostname > /w/hostname && "
                                               "dd if=/dev/zero of=/w/big bs=1M count=64 2>/dev/null && "
                                               "exec httpd -f -p 80 -h /w"],
                                   ports=[80], host_config=api.create_host_config(port_bindings={80: 18999}))
        api.start(srv["Id"])
        ip = api.inspect_container(srv["Id"])["NetworkSettings"]["IPAddress"]
        assert ip.startswith("10.198.0."), ip          # the bench daemon's own bridge only
        deadline = time.monotonic() + 20
        while True:
            try:
                if _get(ip, 80, "/big")[1] > 64 << 20:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("httpd did not come up")
            time.sleep(0.2)

        print("(a) host -> container")
        paths = {"published 127.0.0.1:18999": ("127.0.0.1", 18999), f"direct {ip}:80": (ip, 80)}
        lat = {k: [] for k in paths}
        thr = {k: [] for k in paths}
        for _ in range(n):
            for k, (h, p) in paths.items():
                lat[k].append(_get(h, p)[0])
        for _ in range(3 if args.quick else 7):
            for k, (h, p) in paths.items():
                ms, size = _get(h, p, "/big")
                thr[k].append(size / (ms / 1000) / 1e6)
        (pub, direct) = paths
        for k in paths:
            print(f"    {k:28s} throughput {statistics.median(thr[k]):8.0f} MB/s   "
                  f"connect+GET p50 {statistics.median(lat[k]):.3f} ms")
        ratio = statistics.median(thr[pub]) / statistics.median(thr[direct])
        lratio = statistics.median(lat[direct]) / statistics.median(lat[pub])
        print(f"    published/direct: throughput {ratio:.2f}x, latency {lratio:.2f}x (direct/published) "
              f"-> {'PASS' if ratio >= 0.95 else 'MISS'} (target >= 0.95x)")

        print("(b) container -> container")
        cli = api.create_container("busybox", ["sleep", "600"])
        api.start(cli["Id"])
        script = f"i=0; while [ $i -lt {n} ]; do printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc {{}} 80 >/dev/null; " \
                 "i=$((i+1)); done"

        def exec_ms(cid, target):
            e = api.exec_create(cid, ["sh", "-c", script.format(target)])
            start = time.perf_counter()
            api.exec_start(e["Id"])
            return (time.perf_counter() - start) * 1000 / n

        bridge = statistics.median(exec_ms(cli["Id"], ip) for _ in range(3))
        loop = statistics.median(exec_ms(srv["Id"], "127.0.0.1") for _ in range(3))
        print(f"    through the bridge {bridge:.3f} ms per nc GET; same-namespace loopback floor {loop:.3f} ms "
              f"(ratio {bridge / loop:.2f}x; includes nc's own start-up)")
        api.remove_container(cli["Id"], force=True)
        api.remove_container(srv["Id"], force=True)

        print("(c) network setup in run --rm busybox true")

        def run_once(mode):
            start = time.perf_counter()
            c = api.create_container("busybox", ["true"], host_config=api.create_host_config(network_mode=mode))
            api.start(c["Id"])
            api.wait(c["Id"])
            api.remove_container(c["Id"])
            return (time.perf_counter() - start) * 1000

        times = {"bridge": [], "none": []}
        run_once("bridge")
        for _ in range(runs):
            for mode in ("bridge", "none"):
                times[mode].append(run_once(mode))
        b, none = statistics.median(times["bridge"]), statistics.median(times["none"])
        print(f"    bridge {b:.1f} ms, none {none:.1f} ms median: network setup adds {b - none:.1f} ms "
              f"-> {'PASS' if b - none <= 15 else 'MISS'} (target <= 15 ms)")
        api.close()
    finally:
        if proc is not None:
            stop_daemon(proc)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
