#!/usr/bin/env python3
"""berth API and event-store benchmarks: HTTP over the Unix socket, event appends, projection replay.

Run from the repository root:   .venv/bin/python bench/api.py [--quick] [--profile]

Every measurement is repeated and the median is printed. The store numbers sit beside a floor measured
in the same run (raw `sqlite3` doing the same I/O), so runs on different machines compare as ratios.
This is a report, not a test: it exits 0 whether or not a target is met, and non-zero only on a crash.
Everything it creates (temp dirs, the daemon) is removed on the way out, errors and SIGTERM included.
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import http.client
import itertools
import json
import os
import pstats
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app.events.model import NewEvent  # noqa: E402
from app.events.store import EventStore  # noqa: E402
from app.events.upcasters import CURRENT_SCHEMA  # noqa: E402
from app.projections import all_projectors, rebuild  # noqa: E402

REPEATS = 3
INSERT = ("INSERT INTO events (time_nano, type, action, actor_id, attributes, stream, version, schema, payload)"
          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
IMAGES = ["busybox:latest", "alpine:3.19", "nginx:1.25", "redis:7", "postgres:16"]
IMAGE_IDS = {name: "sha256:" + hashlib.sha256(name.encode()).hexdigest() for name in IMAGES}


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))  # what EventStore writes


# ------------------------------------------------------------------ 1. HTTP over the Unix socket

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket; reusing one instance keeps the connection alive."""

    def __init__(self, path: str, timeout: float = 10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def get(conn: UnixHTTPConnection, path: str) -> http.client.HTTPResponse:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {resp.status} {body[:200]!r}")
    return resp


def start_daemon(tmp: str, checkout: str = ROOT, extra_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """A real `cli.py daemon` of `checkout` (default: this tree) on a temp socket and data root under
    `tmp`, once it answers GET /_ping. `extra_args` go after the daemon's own flags."""
    sock = os.path.join(tmp, "berth.sock")
    log_path = os.path.join(tmp, "daemon.log")
    with open(log_path, "wb") as log:  # the child keeps its own copy of the fd
        proc = subprocess.Popen(
            [sys.executable, "cli.py", "daemon", "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "root"),
             "--pidfile", os.path.join(tmp, "berth.pid"), *extra_args],
            cwd=checkout, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as fh:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{fh.read()[-2000:]}")
        try:
            conn = UnixHTTPConnection(sock, timeout=2)
            try:
                get(conn, "/_ping")
                return proc, sock
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("daemon did not answer GET /_ping within 30 s") from None
            time.sleep(0.05)


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the daemon drains and removes its socket and pidfile
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_round(sock: str, path: str, seconds: float, keep_alive: bool) -> tuple[float, float, float]:
    """Sequential GETs for `seconds`: (requests/s, p50 ms, p99 ms)."""
    latencies = []
    conn = UnixHTTPConnection(sock)
    try:
        conn.connect()
        first = conn.sock
        start = time.perf_counter()
        while (t0 := time.perf_counter()) < start + seconds:
            if not keep_alive:
                conn.close()
                conn = UnixHTTPConnection(sock)
            resp = get(conn, path)
            latencies.append(time.perf_counter() - t0)
            if keep_alive and (resp.will_close or conn.sock is not first):
                raise RuntimeError(f"GET {path}: the server closed the keep-alive connection")
        elapsed = t0 - start
    finally:
        conn.close()
    latencies.sort()
    return len(latencies) / elapsed, latencies[len(latencies) // 2] * 1e3, latencies[int(len(latencies) * .99)] * 1e3


def bench_http(tmp: str, seconds: float) -> dict:
    proc, sock = start_daemon(tmp)
    try:
        cases = [("GET /_ping", "/_ping", True), ("GET /v1.45/containers/json", "/v1.45/containers/json", True),
                 ("GET /_ping, new connection each", "/_ping", False)]
        out = {}
        for label, path, keep in cases:
            http_round(sock, path, 0.3, keep)  # warm-up: imports, first requests, thread pool
            runs = [http_round(sock, path, seconds, keep) for _ in range(REPEATS)]
            out[label] = [statistics.median(col) for col in zip(*runs)]
        return out
    finally:
        stop_daemon(proc)


# ------------------------------------------------------------------ realistic events

def container_lifecycle(rng: random.Random, n: int, cycles: int, destroy: bool = True):
    """(container id, [(action, attributes, payload)]): create, `cycles` x (start, die), destroy."""
    cid = "%064x" % rng.getrandbits(256)
    image = rng.choice(IMAGES)
    attrs = {"image": image, "name": f"bench_{n}"}
    labels = {"com.example.bench": "api", "com.example.n": str(n)}
    payload = {
        "image_id": IMAGE_IDS[image], "labels": labels,
        "config": {"Image": image, "Cmd": ["sh", "-c", f"echo {n}; sleep 1"], "Entrypoint": None,
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"N={n}"],
                   "WorkingDir": "", "Tty": False, "OpenStdin": False, "Labels": labels},
        "host_config": {"NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                        "Binds": None, "AutoRemove": False},
    }
    steps = [("create", attrs, payload)]
    for _ in range(cycles):
        steps.append(("start", attrs, {"pid": rng.randint(1000, 4_000_000)}))
        steps.append(("die", {**attrs, "exitCode": str(rng.choice((0, 0, 0, 1, 137))), "execDuration": "1"}, None))
    if destroy:
        steps.append(("destroy", attrs, None))
    return cid, steps


def event_rows(n: int, seed: int = 1):
    """n event rows as EventStore writes them, for a churn of ~n/20 containers (each created, started
    and stopped 1-15 times, 90 % destroyed), with 2.5 % image pull/tag/untag and 2.5 % volume create/destroy."""
    rng = random.Random(seed)
    t0 = time.time_ns() - n * 1000
    versions: dict[str, int] = {}
    pool: list[list] = []  # live containers: [id, steps, next step]
    tagged: set[tuple[str, str]] = set()
    volumes: list[str] = []
    created = 0
    for seq in range(n):
        r = rng.random()
        if r < 0.025:
            image = rng.choice(IMAGES)
            typ, actor = "image", IMAGE_IDS[image]
            ref = f"{image.split(':')[0]}:build-{rng.randrange(50)}"
            if f"image:{actor}" not in versions:
                action, attrs = "pull", {"name": image}
                payload = {"size": 4_000_000, "created_nano": t0, "labels": {}, "config": {"Cmd": ["sh"]}}
            else:
                action = "untag" if (actor, ref) in tagged else "tag"
                tagged.symmetric_difference_update({(actor, ref)})
                attrs, payload = {"name": ref}, None
        elif r < 0.05:
            typ, attrs = "volume", {"driver": "local"}
            if not volumes or rng.random() < 0.5:
                actor, action, payload = f"vol{seq}", "create", {"labels": {}, "options": {}, "anonymous": False}
                volumes.append(actor)
            else:
                i = rng.randrange(len(volumes))
                actor, action, payload = volumes[i], "destroy", None
                volumes[i] = volumes[-1]
                volumes.pop()
        else:
            if r < 0.10 or not pool:
                created += 1
                pool.append([*container_lifecycle(rng, created, rng.randint(1, 15), rng.random() < 0.9), 0])
                i = len(pool) - 1
            else:
                i = rng.randrange(len(pool))
            c = pool[i]
            action, attrs, payload = c[1][c[2]]
            c[2] += 1
            if c[2] == len(c[1]):  # lifecycle over (destroyed, or left exited)
                pool[i] = pool[-1]
                pool.pop()
            typ, actor = "container", c[0]
        stream = f"{typ}:{actor}"
        versions[stream] = versions.get(stream, 0) + 1
        yield (t0 + seq * 1000, typ, action, actor, dumps(attrs), stream, versions[stream], CURRENT_SCHEMA,
               None if payload is None else dumps(payload))


# ------------------------------------------------------------------ 2. event append throughput

def append_workload(n: int) -> list[NewEvent]:
    """n container events: create (with payload), start, die (exitCode), destroy, container after container."""
    rng, events = random.Random(2), []
    for k in itertools.count():
        if len(events) >= n:
            return events[:n]
        cid, steps = container_lifecycle(rng, k, cycles=1)
        events += [NewEvent("container", action, cid, attrs, payload) for action, attrs, payload in steps]


def time_berth_appends(tmp: str, events: list[NewEvent], profile: cProfile.Profile | None = None) -> float:
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        store = EventStore(os.path.join(d, "berth.db"), all_projectors())
        try:
            if profile:
                profile.enable()
            t0 = time.perf_counter()
            for ev in events:
                store.append([ev])  # one durable transaction per event, projections included
            elapsed = time.perf_counter() - t0
            if profile:
                profile.disable()
            return elapsed
        finally:
            store.close()


def time_sqlite_appends(tmp: str, rows: list[tuple]) -> float:
    """Floor: raw sqlite3, WAL + synchronous=NORMAL, same columns (no secondary index), INSERT + COMMIT each."""
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        conn = sqlite3.connect(os.path.join(d, "floor.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, time_nano INTEGER, type TEXT, action TEXT,"
                         " actor_id TEXT, attributes TEXT, stream TEXT, version INTEGER, schema INTEGER, payload TEXT)")
            t0 = time.perf_counter()
            for row in rows:
                conn.execute("BEGIN")
                conn.execute(INSERT, row)
                conn.execute("COMMIT")
            return time.perf_counter() - t0
        finally:
            conn.close()


def bench_append(tmp: str, n: int, profile: cProfile.Profile | None) -> dict:
    events = append_workload(n)
    t, versions, rows = time.time_ns(), {}, []
    for i, ev in enumerate(events):  # the same events, serialised up front for the floor
        versions[ev.stream] = versions.get(ev.stream, 0) + 1
        rows.append((t + i, ev.type, ev.action, ev.actor_id, dumps(ev.attributes), ev.stream, versions[ev.stream],
                     CURRENT_SCHEMA, None if ev.payload is None else dumps(ev.payload)))
    berth = statistics.median(time_berth_appends(tmp, events) for _ in range(REPEATS))
    floor = statistics.median(time_sqlite_appends(tmp, rows) for _ in range(REPEATS))
    if profile:
        time_berth_appends(tmp, events, profile)
    return {"n": n, "berth": berth, "floor": floor}


# ------------------------------------------------------------------ 3. replay (projection rebuild)

def build_replay_store(path: str, n: int) -> None:
    """berth's schema (indexes, triggers, empty projections), then n rows bulk-inserted in one transaction."""
    EventStore(path, all_projectors()).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        rows = event_rows(n)
        while batch := list(itertools.islice(rows, 50_000)):
            conn.executemany(INSERT, batch)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def bench_replay(tmp: str, n: int, profile: cProfile.Profile | None) -> dict:
    path = os.path.join(tmp, "replay.db")
    t0 = time.perf_counter()
    build_replay_store(path, n)
    build = time.perf_counter() - t0
    store = EventStore(path, all_projectors())
    try:
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            count = rebuild(store)
            times.append(time.perf_counter() - t0)
            assert count == n, f"rebuild replayed {count} events, expected {n}"
        live = store.query("SELECT COUNT(*) FROM containers")[0][0]
        if profile:
            profile.runcall(rebuild, store)
    finally:
        store.close()
    floors = []
    for _ in range(REPEATS):
        conn = sqlite3.connect(path)
        try:
            t0 = time.perf_counter()
            rows = conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
            floors.append(time.perf_counter() - t0)
            assert len(rows) == n
            del rows
        finally:
            conn.close()
    return {"n": n, "build": build, "berth": statistics.median(times), "floor": statistics.median(floors),
            "containers": live, "mb": os.path.getsize(path) / 1e6}


# ------------------------------------------------------------------ report

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s HTTP rounds, 5,000 appends, 100,000 replayed events")
    parser.add_argument("--profile", action="store_true", help="cProfile one append run and one rebuild, print top costs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    seconds, n_append, n_replay = (1.0, 5_000, 100_000) if args.quick else (3.0, 20_000, 1_000_000)
    profiles = {"append": cProfile.Profile(), "rebuild": cProfile.Profile()} if args.profile else {}

    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp:
        print(f"berth bench/api.py ({'quick' if args.quick else 'full'}; medians of {REPEATS} runs)\n", flush=True)
        web = bench_http(tmp, seconds)
        print(f"1. HTTP over the Unix socket, one sequential client, {seconds:g} s per run")
        print(f"   {'request':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for label, (rps, p50, p99) in web.items():
            print(f"   {label:34} {rps:8,.0f} {p50:8.3f} {p99:8.3f}")
        ping, fresh = web["GET /_ping"][0], web["GET /_ping, new connection each"][0]
        print(f"   keep-alive vs new connection: x{ping / fresh:.2f}\n", flush=True)

        ap = bench_append(tmp, n_append, profiles.get("append"))
        rate, floor_rate = ap["n"] / ap["berth"], ap["n"] / ap["floor"]
        print(f"2. Event append, {ap['n']:,} single-event transactions (create/start/die/destroy)")
        print(f"   berth EventStore.append + 3 projections {ap['berth']:7.2f} s {rate:9,.0f} appends/s "
              f"{ap['berth'] / ap['n'] * 1e6:6.0f} us each")
        print(f"   floor: sqlite3 INSERT + COMMIT          {ap['floor']:7.2f} s {floor_rate:9,.0f} appends/s "
              f"{ap['floor'] / ap['n'] * 1e6:6.0f} us each")
        print(f"   ratio berth / floor: x{ap['berth'] / ap['floor']:.2f}\n", flush=True)

        rp = bench_replay(tmp, n_replay, profiles.get("rebuild"))
        print(f"3. Replay: rebuild(store) of {rp['n']:,} events ({rp['mb']:.0f} MB db, built in {rp['build']:.1f} s; "
              f"{rp['containers']:,} containers left)")
        print(f"   berth rebuild (decode + 3 projections) {rp['berth']:7.2f} s {rp['n'] / rp['berth']:9,.0f} events/s")
        print(f"   floor: SELECT * ORDER BY seq fetchall  {rp['floor']:7.2f} s {rp['n'] / rp['floor']:9,.0f} events/s")
        print(f"   ratio berth / floor: x{rp['berth'] / rp['floor']:.1f}\n")

    replay_limit = rp["n"] / 50_000  # 20 s per 1M events
    summary = [
        ("/_ping keep-alive", f"{ping:,.0f} req/s", ">= 2,000 req/s", ping >= 2000),
        ("event append", f"{rate:,.0f} appends/s", ">= 10,000 appends/s", rate >= 10_000),
        (f"replay {rp['n']:,} events", f"{rp['berth']:.1f} s", f"<= {replay_limit:g} s", rp["berth"] <= replay_limit),
    ]
    print("Summary")
    for name, value, target, ok in summary:
        print(f"   {name:26} {value:>18}   target {target:20} {'PASS' if ok else 'MISS'}")
    for name, prof in profiles.items():
        print(f"\ncProfile, {name}: top 15 by own time")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
