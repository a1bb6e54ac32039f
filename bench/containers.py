"""Container start cost against raw runc, measured side by side in the same run.

    .venv/bin/python bench/containers.py [--quick] [--compare CHECKOUT]

(a) floor: raw `runc run` of a busybox bundle (overlay already mounted) doing `true`
(b) `run --rm busybox true` through the API (docker-py low level: create, start, wait, remove)
(c) `run --rm busybox true` as a user types it: the official `docker` CLI (when installed) and our CLI,
    each a new process (client start-up included; the docker CLI also attaches and negotiates)
(d) `run -d` + `rm -f` pairs
(g) N parallel `run -d` (create + start of `sleep 300`, one client per thread, as N docker CLIs) over N
    sequential ones, N = 8 and 16, in the same run; the rm -f of them all is outside the timing
(e) `GET /containers/json?all=1` latency with N created containers
(f) daemon RSS idle and with M running containers; conmon PSS per container
Targets: (b) <= 2.5x (a); (e) <= 10 ms; idle RSS <= 60 MiB; <= 1 MiB PSS per container monitor;
(g) parallel / sequential <= 0.65 (2 cores; dockerd measured 0.59 here).

--compare CHECKOUT (another checkout of berth, e.g. a `git worktree add --detach` of an older commit)
also measures that tree in the same run: (a) on a bundle whose config.json that tree's spec builder
wrote (same rootfs), (b), (c) (both CLIs) and (d) against a second daemon started from CHECKOUT's cli.py
(its own temp data root and cgroup parent, the same busybox image); (g) too. Runs of the two trees alternate
(A B B A ...), so drifts of the machine's load hit both alike; medians of both, the ratio this tree /
CHECKOUT and each to its own floor are printed. Nothing is written into CHECKOUT (bytecode goes to a
temp PYTHONPYCACHEPREFIX).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import start_daemon, stop_daemon  # noqa: E402  (bench/api.py)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))


# Run by spec_of() in a checkout's own interpreter (cwd and sys.path[0] = the checkout): that tree's
# spec builder writes config.json (and its /etc files) for the bundle; the rootfs is shared.
_SPEC_SNIPPET = """
import json, sys
from app.runtime.containers.spec import build_spec, write_etc_files
rootfs, bundle, cgroups_path = sys.argv[1:4]
spec = build_spec(rootfs=rootfs, container_id="floor", image_config={}, config={"Cmd": ["true"]},
                  host_config={}, hostname="floor", cgroups_path=cgroups_path, netns_path=None,
                  etc_files=write_etc_files(bundle, "floor"))
with open(bundle + "/config.json", "w") as fh:
    json.dump(spec, fh)
"""


def spec_of(checkout: str, rootfs: str, bundle: str, cgroups_path: str, env: dict) -> None:
    os.makedirs(bundle, exist_ok=True)
    subprocess.run([sys.executable, "-c", _SPEC_SNIPPET, rootfs, bundle, cgroups_path], cwd=checkout, env=env,
                   check=True)


def runc_floor(tmp: str, busybox_tar: str, runs: int, checkouts: list[str], env: dict) -> list[list[float]]:
    """Raw runc on bundles whose config.json each checkout's spec builder wrote, over one rootfs mounted
    by berth's overlay code (no daemon); the checkouts' runs alternate. One list of times per checkout."""
    from app.config import Config
    from app.engine import Engine
    from app.runtime.host.overlay import mount_rootfs, unmount_rootfs
    engine = Engine(Config(data_root=os.path.join(tmp, "floor-root"), cgroup_parent="berth-bench"))
    try:
        with open(busybox_tar, "rb") as fh:
            image_id = engine.images.import_tar(fh, "-", "busybox", None, "", [])
        layers = engine.images.layer_dirs(engine.images.resolve(image_id)[0])
        bundle = os.path.join(tmp, "floor-bundle")
        os.makedirs(bundle)
        rootfs = mount_rootfs(bundle, layers)
        try:
            bundles = [os.path.join(tmp, f"floor-bundle-{k}") for k in range(len(checkouts))]
            for checkout, b in zip(checkouts, bundles):
                spec_of(checkout, rootfs, b, "/berth-bench/floor", env)
            runc = [shutil.which("runc"), "--root", os.path.join(tmp, "floor-runc")]
            times: list[list[float]] = [[] for _ in checkouts]
            for i in range(runs + 1):                  # run 0 of each is a warm-up
                for k in alternate(len(checkouts), i):
                    t = timed(lambda: subprocess.run(runc + ["run", "--bundle", bundles[k], f"floor{k}-{i}"],
                                                     check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
                    times[k].append(t)
            return [t[1:] for t in times]
        finally:
            unmount_rootfs(bundle)
    finally:
        engine.close()


def alternate(n: int, i: int) -> list[int]:
    """The order of n measured things in round i: A B, then B A, ... (each goes first equally often)."""
    order = list(range(n))
    return order if i % 2 == 0 else order[::-1]


class Tree:
    """One checkout's daemon, clients and measurements."""

    def __init__(self, label: str, checkout: str, tmp: str, cgroup_parent: str):
        self.label, self.checkout, self.tmp, self.cgroup_parent = label, checkout, tmp, cgroup_parent
        self.proc = self.api = None
        self.times: dict[str, list[float]] = {}
        self.clients: list = []

    def start(self, tar: str, env: dict) -> None:
        import docker
        os.makedirs(self.tmp)
        self.proc, self.sock = start_daemon(self.tmp, self.checkout, ("--cgroup-parent", self.cgroup_parent))
        self.api = docker.APIClient(base_url=f"unix://{self.sock}", version="1.45")
        with open(tar, "rb") as fh:
            self.api.import_image_from_data(fh.read(), repository="busybox", tag="latest")
        self.idle_rss = rss_kib(self.proc.pid)
        self.cli = [sys.executable, os.path.join(self.checkout, "cli.py"), "-H", f"unix://{self.sock}"]
        self.env = env

    def run_rm(self) -> None:
        cid = self.api.create_container("busybox", ["true"])["Id"]
        self.api.start(cid)
        self.api.wait(cid)
        self.api.remove_container(cid)

    def run_d_rm_f(self) -> None:
        cid = self.api.create_container("busybox", ["sleep", "30"])["Id"]
        self.api.start(cid)
        self.api.remove_container(cid, force=True)

    def burst(self, n: int, parallel: bool) -> float:
        """ms for n `run -d` (create + start of a long sleep), all at once on n threads each with its
        own client, or one after another; their rm -f is not timed."""
        import docker
        while len(self.clients) < n:
            self.clients.append(docker.APIClient(base_url=f"unix://{self.sock}", version="1.45"))
        cids, failures = [], []

        def run_d(api) -> None:
            try:
                cid = api.create_container("busybox", ["sleep", "300"])["Id"]
                api.start(cid)
                cids.append(cid)
            except Exception as err:  # noqa: BLE001 - raised below, after the others finish
                failures.append(err)

        if parallel:
            gate = threading.Barrier(n + 1)
            threads = [threading.Thread(target=lambda api=api: (gate.wait(), run_d(api))) for api in self.clients[:n]]
            for thread in threads:
                thread.start()
            gate.wait()
            start = time.perf_counter()
            for thread in threads:
                thread.join()
        else:
            start = time.perf_counter()
            for _ in range(n):
                run_d(self.clients[0])
        elapsed = (time.perf_counter() - start) * 1000
        for cid in cids:
            self.api.remove_container(cid, force=True)
        if failures:
            raise failures[0]
        return elapsed

    def our_cli(self) -> None:
        subprocess.run(self.cli + ["run", "--rm", "busybox", "true"], check=True, env=self.env,
                       stdout=subprocess.DEVNULL)

    def docker_cli(self) -> None:
        subprocess.run([shutil.which("docker"), "-H", f"unix://{self.sock}", "run", "--rm", "busybox", "true"],
                       check=True, env=self.env, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.api is not None:
            self.api.close()
        if self.proc is not None:
            stop_daemon(self.proc)


def interleaved(trees: list[Tree], key: str, runs: int, fn) -> None:
    """One warm-up each, then `runs` rounds of fn(tree) for every tree in alternating order."""
    for tree in trees:
        fn(tree)
    for tree in trees:
        tree.times[key] = []
    for i in range(runs):
        for k in alternate(len(trees), i):
            trees[k].times[key].append(timed(lambda: fn(trees[k])))


BURSTS = (8, 16)


def bursts(trees: list[Tree], rounds: int) -> None:
    """(g): per round, for each tree (alternating) and each N, N sequential then N parallel `run -d`
    (the order of those two alternating too); one warm-up round first."""
    for i in range(rounds + 1):
        for k in alternate(len(trees), i):
            tree = trees[k]
            for n in BURSTS:
                for parallel in ((False, True) if i % 2 == 0 else (True, False)):
                    ms = tree.burst(n, parallel)
                    if i:
                        tree.times.setdefault(f"{'par' if parallel else 'seq'}{n}", []).append(ms)


def main() -> int:
    parser = argparse.ArgumentParser(description="container start cost against raw runc")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="another berth checkout to measure in the same run, alternating with this one")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 20, --quick 5)")
    args = parser.parse_args()
    quick = args.quick
    runs, listed, running = (5, 50, 5) if quick else (20, 1000, 100)
    runs = args.runs or runs
    if args.compare and not os.path.isfile(os.path.join(args.compare, "cli.py")):
        parser.error(f"--compare: no cli.py in {args.compare}")
    tmp = tempfile.mkdtemp(prefix="berth-bench-containers-")
    # no bytecode written into any checkout; the warm-up runs compile into the temp prefix
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["DOCKER_CONFIG"] = os.path.join(tmp, "docker-config")
    env["PYTHONPYCACHEPREFIX"] = os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")  # daemons too
    trees = [Tree("this tree", ROOT, os.path.join(tmp, "cur"), "berth-bench-cur")]
    if args.compare:
        trees.append(Tree(os.path.abspath(args.compare), os.path.abspath(args.compare), os.path.join(tmp, "cmp"),
                          "berth-bench-cmp"))
    try:
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True)
        floors = runc_floor(tmp, tar, runs, [t.checkout for t in trees], env)
        for tree, floor in zip(trees, floors):
            tree.times["floor"] = floor
        for tree in trees:
            tree.start(tar, env)
        interleaved(trees, "api", runs, Tree.run_rm)
        interleaved(trees, "pair", runs, Tree.run_d_rm_f)
        interleaved(trees, "our CLI", runs, Tree.our_cli)
        burst_rounds = max(3, runs // 4)
        bursts(trees, burst_rounds)
        if shutil.which("docker"):
            interleaved(trees, "docker CLI", runs, Tree.docker_cli)
        cur = trees[0]
        api = cur.api

        started = []
        for _ in range(running):
            cid = api.create_container("busybox", ["sleep", "300"])["Id"]
            api.start(cid)
            started.append(cid)
        busy_rss = rss_kib(cur.proc.pid)
        pss = []
        for cid in started[:10]:
            path = os.path.join(cur.tmp, "root", "containers", cid, "userdata", "conmon.pid")
            with open(path) as fh:
                pss.append(pss_kib(int(fh.read())))
        for cid in started:
            api.remove_container(cid, force=True)
        for _ in range(listed):
            api.create_container("busybox", ["true"])
        ps = [timed(lambda: api.containers(all=True)) for _ in range(runs)]
        for c in api.containers(all=True):
            api.remove_container(c["Id"], force=True)

        med = statistics.median
        t = cur.times
        floor = med(t["floor"])
        print(f"berth bench/containers.py ({'quick' if quick else 'full'}; medians of {runs})\n")
        rows = [
            ("(a) raw runc run true (floor)", f"{floor:.1f} ms", ""),
            ("(b) API create+start+wait+rm, true", f"{med(t['api']):.1f} ms",
             f"x{med(t['api']) / floor:.2f} floor; target <= 2.5x: {'PASS' if med(t['api']) <= 2.5 * floor else 'MISS'}"),
            *[(f"(c) {label} run --rm busybox true", f"{med(t[label]):.1f} ms", f"x{med(t[label]) / floor:.2f} floor")
              for label in ("docker CLI", "our CLI") if label in t],
            ("(d) run -d + rm -f pair", f"{med(t['pair']):.1f} ms", ""),
            (f"(e) ps -a with {listed} containers", f"{med(ps):.1f} ms",
             f"target <= 10 ms: {'PASS' if med(ps) <= 10 else 'MISS'}"),
            ("(f) daemon RSS idle", f"{cur.idle_rss / 1024:.1f} MiB",
             f"target <= 60 MiB: {'PASS' if cur.idle_rss <= 60 * 1024 else 'MISS'}"),
            (f"(f) daemon RSS with {running} running", f"{busy_rss / 1024:.1f} MiB", ""),
            ("(f) conmon PSS per container", f"{med(pss):.0f} KiB",
             f"target <= 1 MiB: {'PASS' if med(pss) <= 1024 else 'MISS'}"),
            *[(f"(g) {n} parallel / {n} sequential run -d", f"{med(t[f'par{n}']):.0f} / {med(t[f'seq{n}']):.0f} ms",
               f"x{med(t[f'par{n}']) / med(t[f'seq{n}']):.2f} (medians of {burst_rounds}); target <= 0.65: "
               f"{'PASS' if med(t[f'par{n}']) <= 0.65 * med(t[f'seq{n}']) else 'MISS'}") for n in BURSTS],
        ]
        for name, value, note in rows:
            print(f"   {name:<40}{value:>12}   {note}")
        if len(trees) > 1:
            other = trees[1]
            o = other.times
            ofloor = med(o["floor"])
            print(f"\nthis tree against {other.label} (same run, alternating; medians of {runs}):\n")
            print(f"   {'':<36}{'this tree':>11}{'compared':>11}{'this/compared':>15}"
                  f"{'this/floor':>12}{'cmp/own floor':>15}{'cmp/this floor':>16}")
            for key, name in (("floor", "(a) raw runc run true"), ("api", "(b) API create+start+wait+rm"),
                              ("docker CLI", "(c) docker CLI run --rm busybox true"),
                              ("our CLI", "(c) our CLI run --rm busybox true"), ("pair", "(d) run -d + rm -f pair")):
                if key not in t:
                    continue
                a, b = med(t[key]), med(o[key])
                print(f"   {name:<36}{a:>8.1f} ms{b:>8.1f} ms{a / b:>14.2f}x{a / floor:>11.2f}x"
                      f"{b / ofloor:>14.2f}x{b / floor:>15.2f}x")
            for n in BURSTS:
                a, b = med(t[f"par{n}"]) / med(t[f"seq{n}"]), med(o[f"par{n}"]) / med(o[f"seq{n}"])
                print(f"   {f'(g) {n} parallel / sequential run -d':<36}{a:>10.2f}x{b:>10.2f}x{a / b:>14.2f}x")
            print(f"   {'daemon RSS idle':<36}{cur.idle_rss / 1024:>7.1f} MiB{other.idle_rss / 1024:>7.1f} MiB"
                  f"{cur.idle_rss / other.idle_rss:>14.2f}x")
        return 0
    finally:
        for tree in trees:
            try:
                tree.stop()
            except Exception as err:  # keep cleaning up
                print(f"stopping the {tree.label} daemon: {err!r}", file=sys.stderr)
        subprocess.run(["umount", "-l", os.path.join(tmp, "floor-bundle", "rootfs")], capture_output=True)
        for controller in os.listdir("/sys/fs/cgroup"):
            for parent in ("berth-bench", *(tree.cgroup_parent for tree in trees)):
                try:
                    os.rmdir(os.path.join("/sys/fs/cgroup", controller, parent))
                except OSError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
