"""Streams and connections under load: the numbers for the README (issue 8).

    .venv/bin/python bench/stress.py [--quick]

Starts its own `cli.py daemon` on a temp Unix socket and data root (nothing else is contacted) and
prints:
(a) parallel `docker run --rm busybox sleep 1` (as the CLI does it: create, attach, wait, start),
    N = 100 and 300 (--quick: 100): how many completed and the wall time;
(b) `/_ping` latency on new connections (median / p99) while 200 streams of each kind are held:
    attach to a silent container, /events, /wait, logs -f; and after 200 silent connections;
(c) daemon RSS and thread count before, with the held streams, and after they were dropped;
(d) RSS per run: 3 rounds of 50 sequential `docker run --rm busybox true` (the official docker CLI
    when installed, else the same requests through docker-py), RSS and the event store's open reader
    connections after each round, and KiB per run (the first round also warms the worker pool up).
    `--rss-only` runs just (d); `--rounds`/`--runs` change its size.
Bounded in count and time; removes everything it made.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import start_daemon, stop_daemon  # noqa: E402  (bench/api.py)

import docker  # noqa: E402


def proc_status(pid: int) -> tuple[int, int]:
    """(RSS KiB, threads) of the daemon."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def ping_ms(sock_path: str) -> float:
    started = time.perf_counter()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(sock_path)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if not s.recv(64).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("/_ping did not answer 200")
    finally:
        s.close()
    return (time.perf_counter() - started) * 1000


def ping_stats(sock_path: str, n: int = 50) -> str:
    times = sorted(ping_ms(sock_path) for _ in range(n))
    return f"median {statistics.median(times):6.2f} ms  p99 {times[int(len(times) * 0.99) - 1]:6.2f} ms"


def open_stream(sock_path: str, request: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"stream refused: {head[:100]!r}")
        head += chunk
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 101")):
        raise RuntimeError(f"stream refused: {head[:100]!r}")
    return s


def run_like_cli(host: str, results: list, i: int) -> None:
    client = docker.APIClient(base_url=host, version="1.45", timeout=120)
    try:
        cid = client.create_container("busybox", ["sleep", "1"],
                                      host_config=client.create_host_config(auto_remove=True))["Id"]
        attach = client.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
        waited: list = []
        waiter = threading.Thread(target=lambda: waited.append(client.wait(cid, condition="removed")))
        waiter.start()
        client.start(cid)
        raw = getattr(attach, "_sock", attach)
        while raw.recv(4096):
            pass
        raw.close()
        waiter.join(120)
        results[i] = waited[0]["StatusCode"] if waited else None
    except Exception as err:
        results[i] = repr(err)
    finally:
        client.close()


def sequential_rss(host: str, pid: int, rounds: int, runs: int) -> None:
    """(d): daemon RSS growth per sequential CLI-style run --rm."""
    docker_cli = shutil.which("docker")
    how = "docker CLI" if docker_cli else "docker-py, as the CLI"

    def one() -> None:
        if docker_cli:
            subprocess.run([docker_cli, "-H", host, "run", "--rm", "busybox", "true"], check=True,
                           stdout=subprocess.DEVNULL)
        else:
            results: list = [None]
            run_like_cli(host, results, 0)
            if results[0] != 0:
                raise RuntimeError(f"run failed: {results[0]}")

    client = docker.APIClient(base_url=host, version="1.45", timeout=60)
    try:
        def readers() -> int:
            return client.info()["BerthServer"].get("StoreReaders", -1)
        for _ in range(3):
            one()                       # first-use costs (imports, caches) out of the numbers
        time.sleep(1)
        start = prev = proc_status(pid)[0]
        print(f"(d) sequential run --rm ({how}): RSS {start / 1024:6.1f} MiB, {readers()} store readers")
        for r in range(1, rounds + 1):
            began = time.monotonic()
            for _ in range(runs):
                one()
            took = (time.monotonic() - began) / runs * 1000
            time.sleep(1)
            rss = proc_status(pid)[0]
            print(f"(d) after {r * runs:4d} runs: RSS {rss / 1024:6.1f} MiB ({(rss - prev) / runs:+6.1f} KiB/run),"
                  f" {readers()} store readers, {took:5.0f} ms/run")
            prev = rss
        print(f"(d) overall {(prev - start) / (rounds * runs):+.1f} KiB/run")
    finally:
        client.close()


def parallel_runs(host: str, n: int) -> None:
    results: list = [None] * n
    threads = [threading.Thread(target=run_like_cli, args=(host, results, i), daemon=True) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, 180 - (time.monotonic() - started)))
    took = time.monotonic() - started
    ok = sum(1 for r in results if r == 0)
    print(f"(a) {n:3d} parallel runs: {ok}/{n} completed in {took:5.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rss-only", action="store_true", help="only (d), RSS per sequential run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=50, help="runs per round in (d)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-stress-")
    proc = None
    try:
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True,
                       stdout=subprocess.DEVNULL)
        proc, sock_path = start_daemon(tmp)
        host = "unix://" + sock_path
        subprocess.run([sys.executable, os.path.join(ROOT, "cli.py"), "-H", host, "import", tar, "busybox:latest"],
                       check=True, stdout=subprocess.DEVNULL)
        if args.rss_only:
            sequential_rss(host, proc.pid, args.rounds, args.runs)
            return 0
        client = docker.APIClient(base_url=host, version="1.45", timeout=60)
        rss, threads = proc_status(proc.pid)
        print(f"(c) daemon before: RSS {rss / 1024:6.1f} MiB, {threads} threads")
        print(f"(b) /_ping, idle:                    {ping_stats(sock_path)}")
        for n in (100,) if args.quick else (100, 300):
            parallel_runs(host, n)
            rss, threads = proc_status(proc.pid)
            print(f"(c) daemon after {n} runs: RSS {rss / 1024:6.1f} MiB, {threads} threads")
        cid = client.create_container("busybox", ["sleep", "600"])["Id"]
        client.start(cid)
        requests = {
            "attach": (f"POST /v1.45/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                       "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"),
            "events": "GET /v1.45/events HTTP/1.1\r\nHost: x\r\n\r\n",
            "wait": f"POST /v1.45/containers/{cid}/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "logs -f": f"GET /v1.45/containers/{cid}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        for kind, request in requests.items():
            held = [open_stream(sock_path, request) for _ in range(200)]
            rss, threads = proc_status(proc.pid)
            print(f"(b) /_ping, 200 held {kind + ' streams:':15s} {ping_stats(sock_path)}"
                  f"   (RSS {rss / 1024:6.1f} MiB, {threads} threads)")
            for s in held:
                s.close()
            time.sleep(1.5)
        silent = []
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            silent.append(s)
        print(f"(b) /_ping, 200 silent connections:  {ping_stats(sock_path)}")
        for s in silent:
            s.close()
        time.sleep(1.5)
        rss, threads = proc_status(proc.pid)
        print(f"(c) daemon after:  RSS {rss / 1024:6.1f} MiB, {threads} threads"
              f" (open streams: {client.info()['BerthServer']['Streams']})")
        client.remove_container(cid, force=True)
        client.close()
        sequential_rss(host, proc.pid, args.rounds, args.runs)
    finally:
        if proc is not None:
            stop_daemon(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
