"""Daemon start-to-serving with a big history: 1,000 containers and 1,000,000 events in the log.

    .venv/bin/python bench/boot.py [--containers 1000] [--events 1000000] [--runs 5]

Setup (not timed): a daemon creates N containers (created, 10 % run to an exit, 20 `sleep 300` left
running); it is stopped cleanly (the running ones keep running, as with Docker's live-restore) and
the log is filled up to E events offline with daemon `reload` events, which no projection keeps
(so the tables hold what 1,000 containers make, and the log is E long).
Timed: `cli.py daemon` from exec to the first answer of GET /containers/json?all=1 (ps -a: boot done,
projections readable), RUNS times, the daemon stopped cleanly between runs.
Floor, same run: a new Python process opening the database with sqlite3 and counting the events.
Target: <= 3 s.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import stop_daemon  # noqa: E402  (bench/api.py)

# Networking of the bench daemon: a bridge, subnets and cgroup parent of its own, so it never meets
# another berth daemon (tests, other benches) on this machine.
OWN = ("--bridge", "berth-bboot", "--bip", "10.254.0.1/22", "--default-address-pool", "base=10.254.16.0/20,size=24",
       "--cgroup-parent", "berth-bench-boot")


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def _serving(sock: str) -> bool:
    conn = _Unix(sock)
    try:
        conn.request("GET", "/containers/json?all=1")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start(tmp: str) -> tuple[subprocess.Popen, str, float]:
    """Start the daemon; (process, socket, ms from exec to serving ps -a)."""
    sock = os.path.join(tmp, "berth.sock")
    log = open(os.path.join(tmp, "daemon.log"), "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "cli.py", "daemon", "-H", f"unix://{sock}",
                             "--data-root", os.path.join(tmp, "root"), "--pidfile", os.path.join(tmp, "pid"), *OWN],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    while not _serving(sock):
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}; see {tmp}/daemon.log")
        if time.perf_counter() - t0 > 120:
            proc.kill()
            raise RuntimeError("daemon not serving after 120 s")
        time.sleep(0.005)
    return proc, sock, (time.perf_counter() - t0) * 1000


def populate(sock: str, containers: int) -> None:
    import docker
    tar = os.path.join(os.path.dirname(sock), "bb.tar")
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True,
                   capture_output=True)
    client = docker.APIClient(base_url=f"unix://{sock}", version="1.45", timeout=120)
    with open(tar, "rb") as fh:
        client.import_image_from_data(fh.read(), repository="busybox", tag="latest")

    def one(i: int) -> None:
        c = docker.APIClient(base_url=f"unix://{sock}", version="1.45", timeout=120)
        try:
            if i < 20:
                cid = c.create_container("busybox", ["sleep", "300"])["Id"]
                c.start(cid)
            else:
                cid = c.create_container("busybox", ["true"], labels={"n": str(i)})["Id"]
                if i % 10 == 0:
                    c.start(cid)
                    c.wait(cid)
        finally:
            c.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(containers)))
    client.close()


def fill_log(data_root: str, events: int) -> int:
    from app.events.model import NewEvent
    from app.events.store import EventStore
    from app.projections import all_projectors
    store = EventStore(os.path.join(data_root, "berth.db"), all_projectors())
    try:
        have = store.query("SELECT COUNT(*) FROM events")[0][0]
        batch = 20000
        while have < events:
            n = min(batch, events - have)
            store.append([NewEvent("daemon", "reload", "bench-boot", {"name": "bench", "n": str(have + i)})
                          for i in range(n)])
            have += n
        return have
    finally:
        store.close()


def floor_ms(db: str) -> float:
    snippet = f"import sqlite3; sqlite3.connect({db!r}).execute('SELECT COUNT(*) FROM events').fetchone()"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", snippet], check=True)
    return (time.perf_counter() - t0) * 1000


def clean_up(tmp: str) -> None:
    import docker
    proc, sock, _ = start(tmp)
    client = docker.APIClient(base_url=f"unix://{sock}", version="1.45", timeout=300)
    try:
        for c in client.containers(all=True):
            client.remove_container(c["Id"], force=True)
    finally:
        client.close()
        stop_daemon(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-bench-boot-")
    try:
        proc, sock, first = start(tmp)
        try:
            populate(sock, args.containers)
        finally:
            stop_daemon(proc)
        t0 = time.monotonic()
        total = fill_log(os.path.join(tmp, "root"), args.events)
        print(f"setup: {args.containers} containers, log filled to {total} events in {time.monotonic() - t0:.0f} s")
        db = os.path.join(tmp, "root", "berth.db")
        size = os.path.getsize(db) >> 20
        boots, floors = [], []
        for _ in range(args.runs):
            floors.append(floor_ms(db))
            proc, sock, ms = start(tmp)
            boots.append(ms)
            stop_daemon(proc)
        b, f = statistics.median(boots), statistics.median(floors)
        print(f"database {size} MiB; first start (empty log) {first:.0f} ms")
        print(f"start to serving ps -a: median {b:.0f} ms (runs {', '.join(f'{x:.0f}' for x in boots)}); "
              f"floor (python + sqlite3 count of the log) {f:.0f} ms; ratio {b / f:.1f}x; "
              f"target <= 3000 ms: {'PASS' if b <= 3000 else 'MISS'}")
        clean_up(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
