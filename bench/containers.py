"""Container start cost against raw runc, measured side by side in the same run.

    .venv/bin/python bench/containers.py [--quick]

(a) floor: raw `runc run` of a busybox bundle (overlay already mounted) doing `true`
(b) `run --rm busybox true` through the API (docker-py low level: create, start, wait, remove)
(c) `run --rm busybox true` as a user types it: the official `docker` CLI (when installed) and our CLI,
    each a new process (client start-up included; the docker CLI also attaches and negotiates)
(d) `run -d` + `rm -f` pairs
(e) `GET /containers/json?all=1` latency with N created containers
(f) daemon RSS idle and with M running containers; conmon PSS per container
Targets: (b) <= 2.5x (a); (e) <= 10 ms; idle RSS <= 60 MiB; <= 1 MiB PSS per container monitor.
"""
from __future__ import annotations

import json
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


def runc_floor(tmp: str, busybox_tar: str, runs: int) -> list[float]:
    """Raw runc on a bundle made by berth's own spec builder and overlay code (no daemon)."""
    from app.config import Config
    from app.engine import Engine
    from app.runtime.ocispec import build_spec, write_etc_files
    from app.runtime.overlay import mount_rootfs, unmount_rootfs
    engine = Engine(Config(data_root=os.path.join(tmp, "floor-root"), cgroup_parent="berth-bench"))
    try:
        with open(busybox_tar, "rb") as fh:
            image_id = engine.images.import_tar(fh, "-", "busybox", None, "", [])
        layers = engine.images.layer_dirs(engine.images.resolve(image_id)[0])
        bundle = os.path.join(tmp, "floor-bundle")
        os.makedirs(bundle)
        rootfs = mount_rootfs(bundle, layers)
        try:
            spec = build_spec(rootfs=rootfs, container_id="floor", image_config={}, config={"Cmd": ["true"]},
                              host_config={}, hostname="floor", cgroups_path="/berth-bench/floor",
                              netns_path=None, etc_files=write_etc_files(bundle, "floor"))
            with open(os.path.join(bundle, "config.json"), "w") as fh:
                json.dump(spec, fh)
            runc = [shutil.which("runc"), "--root", os.path.join(tmp, "floor-runc")]
            times = []
            for i in range(runs + 1):
                t = timed(lambda: subprocess.run(runc + ["run", "--bundle", bundle, f"floor{i}"], check=True,
                                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
                times.append(t)
            return times[1:]
        finally:
            unmount_rootfs(bundle)
    finally:
        engine.close()


def main() -> int:
    import docker
    quick = "--quick" in sys.argv
    runs, listed, running = (5, 50, 5) if quick else (20, 1000, 100)
    tmp = tempfile.mkdtemp(prefix="berth-bench-containers-")
    proc = None
    try:
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True)
        floor = runc_floor(tmp, tar, runs)
        proc, sock = start_daemon(tmp)
        api = docker.APIClient(base_url=f"unix://{sock}", version="1.45")
        with open(tar, "rb") as fh:
            api.import_image_from_data(fh.read(), repository="busybox", tag="latest")
        idle_rss = rss_kib(proc.pid)

        def run_rm():
            cid = api.create_container("busybox", ["true"])["Id"]
            api.start(cid)
            api.wait(cid)
            api.remove_container(cid)

        run_rm()                                        # warm-up
        api_runs = [timed(run_rm) for _ in range(runs)]

        def run_d_rm_f():
            cid = api.create_container("busybox", ["sleep", "30"])["Id"]
            api.start(cid)
            api.remove_container(cid, force=True)

        pairs = [timed(run_d_rm_f) for _ in range(runs)]

        clis = {"our CLI": [sys.executable, os.path.join(ROOT, "cli.py"), "-H", f"unix://{sock}"]}
        if shutil.which("docker"):
            clis["docker CLI"] = [shutil.which("docker"), "-H", f"unix://{sock}"]
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        cli_env["DOCKER_CONFIG"] = os.path.join(tmp, "docker-config")
        cli_runs = {}
        for label, argv in clis.items():
            cmd = argv + ["run", "--rm", "busybox", "true"]
            subprocess.run(cmd, check=True, env=cli_env, stdout=subprocess.DEVNULL)      # warm-up
            cli_runs[label] = [timed(lambda: subprocess.run(cmd, check=True, env=cli_env, stdout=subprocess.DEVNULL))
                               for _ in range(runs)]

        started = []
        for _ in range(running):
            cid = api.create_container("busybox", ["sleep", "300"])["Id"]
            api.start(cid)
            started.append(cid)
        busy_rss = rss_kib(proc.pid)
        pss = []
        for cid in started[:10]:
            path = os.path.join(tmp, "root", "containers", cid, "userdata", "conmon.pid")
            with open(path) as fh:
                pss.append(pss_kib(int(fh.read())))
        for cid in started:
            api.remove_container(cid, force=True)
        for _ in range(listed):
            api.create_container("busybox", ["true"])
        ps = [timed(lambda: api.containers(all=True)) for _ in range(runs)]
        for c in api.containers(all=True):
            api.remove_container(c["Id"], force=True)
        api.close()

        med = statistics.median
        print(f"berth bench/containers.py ({'quick' if quick else 'full'}; medians of {runs})\n")
        rows = [
            ("(a) raw runc run true (floor)", f"{med(floor):.1f} ms", ""),
            ("(b) API create+start+wait+rm, true", f"{med(api_runs):.1f} ms",
             f"x{med(api_runs) / med(floor):.2f} floor; target <= 2.5x: {'PASS' if med(api_runs) <= 2.5 * med(floor) else 'MISS'}"),
            *[(f"(c) {label} run --rm busybox true", f"{med(t):.1f} ms", f"x{med(t) / med(floor):.2f} floor")
              for label, t in cli_runs.items()],
            ("(d) run -d + rm -f pair", f"{med(pairs):.1f} ms", ""),
            (f"(e) ps -a with {listed} containers", f"{med(ps):.1f} ms",
             f"target <= 10 ms: {'PASS' if med(ps) <= 10 else 'MISS'}"),
            ("(f) daemon RSS idle", f"{idle_rss / 1024:.1f} MiB",
             f"target <= 60 MiB: {'PASS' if idle_rss <= 60 * 1024 else 'MISS'}"),
            (f"(f) daemon RSS with {running} running", f"{busy_rss / 1024:.1f} MiB", ""),
            ("(f) conmon PSS per container", f"{med(pss):.0f} KiB",
             f"target <= 1 MiB: {'PASS' if med(pss) <= 1024 else 'MISS'}"),
        ]
        for name, value, note in rows:
            print(f"   {name:<40}{value:>12}   {note}")
        return 0
    finally:
        if proc is not None:
            stop_daemon(proc)
        subprocess.run(["umount", "-l", os.path.join(tmp, "floor-bundle", "rootfs")], capture_output=True)
        for controller in os.listdir("/sys/fs/cgroup"):
            try:
                os.rmdir(os.path.join("/sys/fs/cgroup", controller, "berth-bench"))
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
