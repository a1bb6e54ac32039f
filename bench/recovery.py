"""Restart latency of the `always` policy: from a container's exit to running again, the policy delay
aside (the boot part of the issue's recovery benchmark is bench/boot.py).

    .venv/bin/python bench/recovery.py [--containers 4] [--restarts 5] [--runs 3]

Setup: a daemon of its own (bridge, subnets, cgroup parent), busybox imported.
Timed, per run: N containers `--restart always` running `sh -c 'exit 0'`; each restarts R times with
the backoff 0.1, 0.2, 0.4 … s (the runs are short, so it never resets). From the /events stream:
latency = start.timeNano - die.timeNano - the restart's policy delay, i.e. what berth adds: the
scheduler's wake-up and a full start (bundle, conmon, runc, network). The die is recorded by the
exit watcher within milliseconds of conmon's exit file (inotify).
Floor, same run: a user's `POST /containers/{id}/start` of an exited busybox container, timed by the
client (a start without the scheduler).
Target: <= 100 ms plus the policy delay.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import stop_daemon  # noqa: E402  (bench/api.py)

OWN = ("--bridge", "berth-brec", "--bip", "10.254.8.1/22", "--default-address-pool", "base=10.254.32.0/20,size=24",
       "--cgroup-parent", "berth-bench-recovery")


def start_daemon(tmp: str):
    from boot import _serving     # bench/boot.py
    sock = os.path.join(tmp, "berth.sock")
    log = open(os.path.join(tmp, "daemon.log"), "ab")
    proc = subprocess.Popen([sys.executable, "cli.py", "daemon", "-H", f"unix://{sock}",
                             "--data-root", os.path.join(tmp, "root"), "--pidfile", os.path.join(tmp, "pid"), *OWN],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 60
    while not _serving(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"daemon not serving; see {tmp}/daemon.log")
        time.sleep(0.01)
    return proc, sock


def one_run(client, n: int, restarts: int) -> tuple[list[float], list[float]]:
    since = time.time()
    ids = [client.create_container("busybox", ["sh", "-c", "exit 0"],
                                   host_config=client.create_host_config(restart_policy={"Name": "always"}))["Id"]
           for _ in range(n)]
    for cid in ids:
        client.start(cid)
    deadline = time.monotonic() + 10 + sum(0.1 * 2 ** i for i in range(restarts)) * 2
    while time.monotonic() < deadline:
        if all(client.inspect_container(cid)["RestartCount"] >= restarts for cid in ids):
            break
        time.sleep(0.1)
    evs = list(client.events(since=since, until=time.time(), decode=True))
    latencies = []
    for cid in ids:
        mine = [e for e in evs if e.get("id") == cid and e.get("Action") in ("die", "start")]
        k = 0
        for a, b in zip(mine, mine[1:]):
            if a["Action"] == "die" and b["Action"] == "start" and k < restarts:
                latencies.append((b["timeNano"] - a["timeNano"]) / 1e6 - 100 * 2 ** k)
                k += 1
    floors = []
    for cid in ids:
        client.stop(cid, timeout=1)          # a user's stop: no restart follows
        t0 = time.perf_counter()
        client.start(cid)
        floors.append((time.perf_counter() - t0) * 1000)
        client.stop(cid, timeout=1)
    for cid in ids:
        client.remove_container(cid, force=True)
    return latencies, floors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--containers", type=int, default=4)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import docker
    tmp = tempfile.mkdtemp(prefix="berth-bench-recovery-")
    proc = None
    try:
        proc, sock = start_daemon(tmp)
        tar = os.path.join(tmp, "bb.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True,
                       capture_output=True)
        client = docker.APIClient(base_url=f"unix://{sock}", version="1.45", timeout=120)
        with open(tar, "rb") as fh:
            client.import_image_from_data(fh.read(), repository="busybox", tag="latest")
        lat, floors = [], []
        for _ in range(args.runs):
            a, b = one_run(client, args.containers, args.restarts)
            lat += a
            floors += b
        client.close()
        m, f = statistics.median(lat), statistics.median(floors)
        print(f"always: exit-to-running beyond the policy delay, median {m:.0f} ms over {len(lat)} restarts "
              f"(p90 {sorted(lat)[int(len(lat) * 0.9) - 1]:.0f} ms); floor (user start of an exited container) "
              f"median {f:.0f} ms; ratio {m / f:.2f}x; target <= 100 ms: {'PASS' if m <= 100 else 'MISS'}")
        if shutil.which("dockerd") is None:
            print("dockerd: not installed on this machine, no comparison")
    finally:
        if proc is not None:
            stop_daemon(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
