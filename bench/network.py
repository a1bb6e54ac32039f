"""Networking cost, measured side by side in one run (traffic: 127.0.0.1, the host's own
address, the bench daemon's own bridge and its own veth pair).

    .venv/bin/python bench/network.py [--quick]

(a) host → container: throughput (one stream of zeros per round, bench/netpeer.py on both ends: the
    server in the container's namespace pinned to CPU 1, the client on CPU 0; a warm-up, then rounds
    interleaved across the paths, medians) and connect + 1-byte round-trip latency, through the
    published port on 127.0.0.1 (DNAT + the loopback masquerade) and on the host's own address (DNAT
    only; still local traffic) against directly to the container's IP. Target: the published path
    >= 0.95x the direct one (dockerd with its userland proxy: 0.50-0.91x here).
(b) container → container through the bridge (the same peer, client in a second container's
    namespace) against two namespaces joined by one veth pair without a bridge (made and removed here).
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
NS_A, NS_B = "berth-bnch-a", "berth-bnch-b"
VETH_A_IP, VETH_B_IP = "10.198.1.1", "10.198.1.2"
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netpeer.py")
SERVER_CPU, CLIENT_CPU = ("1", "0") if (os.cpu_count() or 1) > 1 else ("0", "0")


def _host_address() -> str:
    """This host's own non-loopback IPv4 address (local traffic: the kernel delivers it on lo), or ""."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        name, addr = line.split()[1], line.split()[3].split("/")[0]
        if not name.startswith(("berth", "docker", "br-", "veth")):
            local = subprocess.run(["ip", "-o", "route", "get", addr], capture_output=True, text=True).stdout
            if local.startswith("local "):        # checked: a destination on this host
                return addr
    return ""


def _client(prefix, *args) -> list[float]:
    out = subprocess.run([*prefix, "taskset", "-c", CLIENT_CPU, sys.executable, PEER, *map(str, args)],
                         capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()]


def _measure(paths: dict, size: int, rounds: int, n: int) -> tuple[dict, dict]:
    """Median MB/s of one `size` stream per path per round (interleaved, after a warm-up round) and
    median ms of connect + a 1-byte round trip."""
    thr = {k: [] for k in paths}
    lat = {k: [] for k in paths}
    for k, (prefix, host, port) in paths.items():
        _client(prefix, "stream", host, port, size >> 2, 1)          # warm-up
    for _ in range(rounds):
        for k, (prefix, host, port) in paths.items():
            thr[k] += _client(prefix, "stream", host, port, size, 1)
    for k, (prefix, host, port) in paths.items():
        lat[k] = _client(prefix, "connect", host, port, n)
    return ({k: statistics.median(v) for k, v in thr.items()}, {k: statistics.median(v) for k, v in lat.items()})


def _veth_floor_up() -> None:
    """Two namespaces joined by one veth, no bridge: the floor for container to container."""
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "link", "add", "berth-bnch-va", "netns", NS_A, "type", "veth", "peer", "name",
                    "berth-bnch-vb", "netns", NS_B], check=True)
    for ns, dev, addr in ((NS_A, "berth-bnch-va", VETH_A_IP), (NS_B, "berth-bnch-vb", VETH_B_IP)):
        subprocess.run(["ip", "-n", ns, "addr", "add", addr + "/30", "dev", dev], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 30 if args.quick else 200
    runs = 10 if args.quick else 30
    size = (64 if args.quick else 256) << 20
    rounds = 3 if args.quick else 7
    peers = []
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
        srv = api.create_container("busybox", ["sleep", "600"], ports=[80],
                                   host_config=api.create_host_config(port_bindings={80: 18999}))
        api.start(srv["Id"])
        ip = api.inspect_container(srv["Id"])["NetworkSettings"]["IPAddress"]
        assert ip.startswith("10.198.0."), ip          # the bench daemon's own bridge only
        srv_pid = api.inspect_container(srv["Id"])["State"]["Pid"]
        peers.append(subprocess.Popen(["nsenter", "-t", str(srv_pid), "-n", "taskset", "-c", SERVER_CPU,
                                       sys.executable, PEER, "serve", "80"], stdout=subprocess.PIPE, text=True))
        assert peers[-1].stdout.readline().strip() == "ready"

        print(f"(a) host -> container (server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; "
              f"{size >> 20} MiB streams, {rounds} interleaved rounds after a warm-up, medians)")
        host_addr = _host_address()
        paths = {f"direct {ip}:80": ([], ip, 80), "published 127.0.0.1:18999": ([], "127.0.0.1", 18999)}
        if host_addr:
            paths[f"published {host_addr}:18999"] = ([], host_addr, 18999)
        thr, lat = _measure(paths, size, rounds, n)
        direct = next(iter(paths))
        for k in paths:
            print(f"    {k:32s} throughput {thr[k]:8.0f} MB/s ({thr[k] / thr[direct]:.2f}x)   "
                  f"connect+1-byte p50 {lat[k]:.3f} ms ({lat[k] / lat[direct]:.2f}x)")
        worst = min(thr[k] / thr[direct] for k in paths)
        print(f"    published/direct throughput (worst path) {worst:.2f}x "
              f"-> {'PASS' if worst >= 0.95 else 'MISS'} (target >= 0.95x)")

        print("(b) container -> container through the bridge vs two namespaces joined by one veth (no bridge)")
        cli = api.create_container("busybox", ["sleep", "600"])
        api.start(cli["Id"])
        cli_pid = api.inspect_container(cli["Id"])["State"]["Pid"]
        bridge_paths = {f"bridge {ip}:80": (["nsenter", "-t", str(cli_pid), "-n"], ip, 80)}
        _veth_floor_up()
        peers.append(subprocess.Popen(["ip", "netns", "exec", NS_A, "taskset", "-c", SERVER_CPU,
                                       sys.executable, PEER, "serve", "80"], stdout=subprocess.PIPE, text=True))
        assert peers[-1].stdout.readline().strip() == "ready"
        bridge_paths[f"veth pair {VETH_A_IP}:80"] = (["ip", "netns", "exec", NS_B], VETH_A_IP, 80)
        thr, lat = _measure(bridge_paths, size, rounds, n)
        bridge_k, floor_k = bridge_paths
        for k in bridge_paths:
            print(f"    {k:32s} throughput {thr[k]:8.0f} MB/s   connect+1-byte p50 {lat[k]:.3f} ms")
        print(f"    bridge/veth floor: throughput {thr[bridge_k] / thr[floor_k]:.2f}x, "
              f"latency {lat[bridge_k] / lat[floor_k]:.2f}x")
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
        for peer in peers:
            peer.kill()
            peer.wait()
        subprocess.run(["ip", "netns", "del", NS_A], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS_B], capture_output=True)
        if proc is not None:
            stop_daemon(proc)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
