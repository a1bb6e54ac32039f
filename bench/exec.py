"""`exec true` through the API against raw `runc exec` of the same container, in the same run.

    .venv/bin/python bench/exec.py [--runs N]

(a) floor: `runc --root <berth's runc root> exec <container> true`, the container berth runs
(b) exec create + start (hijacked, attached: the exit code is known when the stream ends) + inspect
    through the API with docker-py's low-level client: what `docker exec c true` asks of the daemon
(c) the same detached (`exec -d`): create + start {"Detach": true}
(d) `docker exec c true` with the official docker CLI (when installed) and `cli.py exec c true`, each a new
    process, client start-up included
Runs of (a) and (b) alternate, so drifts of the machine's load hit both alike.
Target: (b) <= 2x (a). dockerd's `docker exec true` takes ~80 ms on this kind of machine.
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
from api import start_daemon, stop_daemon  # noqa: E402  (bench/api.py)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    import docker
    tmp = tempfile.mkdtemp(prefix="berth-bench-exec-")
    proc, sock = start_daemon(tmp, extra_args=("--cgroup-parent", "berth-bench-exec"))
    try:
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), tar], check=True,
                       capture_output=True)
        cli = [sys.executable, os.path.join(ROOT, "cli.py"), "-H", f"unix://{sock}"]
        subprocess.run(cli + ["import", tar, "busybox:latest"], check=True, capture_output=True)
        api = docker.APIClient(base_url=f"unix://{sock}", version="1.45")
        cid = api.create_container("busybox", "sleep 3600", name="bench")["Id"]
        api.start(cid)
        runc = [shutil.which("runc") or "runc", "--root", os.path.join(tmp, "root", "runc")]

        def raw():
            subprocess.run(runc + ["exec", cid, "true"], check=True, capture_output=True)

        def attached():
            eid = api.exec_create(cid, "true")["Id"]
            api.exec_start(eid)
            assert api.exec_inspect(eid)["ExitCode"] == 0

        def detached():
            eid = api.exec_create(cid, "true")["Id"]
            api.exec_start(eid, detach=True)

        for fn in (raw, attached, detached):       # warm-up
            fn()
        a, b, c = [], [], []
        for i in range(args.runs):
            order = (raw, attached) if i % 2 == 0 else (attached, raw)
            for fn in order:
                (a if fn is raw else b).append(timed(fn))
            c.append(timed(detached))
        med = statistics.median
        print(f"(a) runc exec true (floor)            median {med(a):6.1f} ms")
        print(f"(b) API exec true, attached + inspect median {med(b):6.1f} ms  = {med(b) / med(a):.2f}x (a)"
              f"  {'PASS' if med(b) <= 2 * med(a) else 'MISS'} (target <= 2x)")
        print(f"(c) API exec -d true                  median {med(c):6.1f} ms  = {med(c) / med(a):.2f}x (a)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        clients = [("our CLI", cli + ["exec", "bench", "true"])]
        if shutil.which("docker"):
            clients.insert(0, ("docker CLI", ["docker", "exec", "bench", "true"]))
        for name, argv in clients:
            times = [timed(lambda: subprocess.run(argv, check=True, capture_output=True, env=env))
                     for _ in range(max(5, args.runs // 3))]
            print(f"(d) {name + ' exec bench true':34s} median {med(times):6.1f} ms  = {med(times) / med(a):.2f}x (a)")
        api.remove_container(cid, force=True)
        api.close()
    finally:
        stop_daemon(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
