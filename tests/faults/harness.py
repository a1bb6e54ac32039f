"""Fault injection: mixed operations from several clients while the daemon is SIGKILLed at random moments
and restarted; afterwards, what the clients were told must match what the log and the host say.

Operations: container create (long- and short-lived, some with an anonymous volume), start, stop,
kill, restart, rm -f -v, exec, volume create/rm, network connect/disconnect. A call counts as a
success only when the daemon answered 2xx; a call cut by a kill has an unknown outcome and is not
judged. After the run:
1. every success is in the log (create -> create, start -> start, stop -> stop, kill -> kill,
   restart -> restart, rm -> destroy, exec -> exec_start, volume create/rm -> create/destroy, network
   connect/disconnect -> connect/disconnect, at least as many events as successes);
2. with the daemon stopped cleanly, `berth admin check` finds no difference between the projections,
   a fresh replay and the host;
3. no container is managed twice (at most one conmon each) or lost (admin check: running in the log
   means running on the host);
4. after removing everything, the data root holds no runc state, no mount, no container process.

CI runs a small setting (tests/faults/test_fault_injection.py). By hand:
    .venv/bin/python -m tests.faults.harness --ops 500 --kills 10 [--clients 4] [--seed N]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "cli.py")
NETWORK = "faultnet"
CALL_TIMEOUT = 30


@dataclass
class Outcome:
    op: str
    target: str
    status: int | None          # None: no answer (the daemon died under the call)


@dataclass
class Report:
    ops: int = 0
    kills: int = 0
    seconds: float = 0.0
    outcomes: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def summary(self) -> dict:
        answered = Counter(o.op for o in self.outcomes if o.status is not None and o.status < 300)
        return {"ops": self.ops, "kills": self.kills, "seconds": round(self.seconds, 1),
                "succeeded": sum(answered.values()),
                "cut_by_a_kill": sum(1 for o in self.outcomes if o.status is None),
                "refused": sum(1 for o in self.outcomes if o.status is not None and o.status >= 300),
                "by_op": dict(sorted(answered.items())),
                "refused_by_op": dict(sorted(Counter(f"{o.op} {o.status}" for o in self.outcomes
                                                     if o.status is not None and o.status >= 300).items())),
                "problems": self.problems}


class Harness:
    def __init__(self, daemon, busybox_tar: str, ops: int = 150, kills: int = 4, clients: int = 4,
                 seed: int | None = None):
        self.d = daemon
        self.busybox_tar = busybox_tar
        self.ops, self.kills, self.clients = ops, kills, clients
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.report = Report()
        self._lock = threading.Lock()
        self._done = 0                       # operations issued so far
        self._up = threading.Event()         # the daemon answers
        self._pool: list[str] = []           # containers the clients know of
        self._volumes: list[str] = []
        self._names = 0

    # ---------------------------------------------------------------------------------- the run

    def run(self) -> Report:
        started = time.monotonic()
        self.d.start()
        self._up.set()
        self.d.cli("import", self.busybox_tar, "busybox:latest", check=True)
        self.d.cli("network", "create", NETWORK, check=True)
        kill_at = sorted(self.rng.sample(range(self.ops // 10, self.ops), min(self.kills, self.ops - self.ops // 10)))
        killer = threading.Thread(target=self._killer, args=(kill_at,), name="killer")
        workers = [threading.Thread(target=self._client, args=(random.Random(self.seed + i + 1),), name=f"client-{i}")
                   for i in range(self.clients)]
        killer.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        killer.join()
        self.report.ops = self._done
        try:
            self._judge()
        finally:
            self._clean_up()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _killer(self, kill_at: list[int]) -> None:
        rng = random.Random(self.seed - 1)
        for point in kill_at:
            while True:
                with self._lock:
                    if self._done >= point or self._done >= self.ops:
                        break
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))            # land inside an operation, not between
            self._up.clear()
            self.d.kill9()
            self.report.kills += 1
            time.sleep(rng.uniform(0, 0.3))
            self.d.start()
            self._up.set()

    def _client(self, rng: random.Random) -> None:
        import docker
        client = docker.APIClient(base_url=self.d.host, version="1.45", timeout=CALL_TIMEOUT)
        try:
            while True:
                with self._lock:
                    if self._done >= self.ops:
                        return
                    self._done += 1
                self._up.wait()
                op = rng.choices(list(OPS), weights=[w for _, w in OPS.values()])[0]
                try:
                    outcome = OPS[op][0](self, client, rng)
                except (docker.errors.DockerException, OSError, ValueError) as err:
                    # connection refused / reset / read timeout: the daemon died under the call
                    outcome = Outcome(op, "", None) if not _answered(err) else Outcome(op, "", _status(err))
                if outcome is not None:
                    with self._lock:
                        self.report.outcomes.append(outcome)
        finally:
            client.close()

    # ---------------------------------------------------------------------------------- operations

    def _pick(self, rng) -> str | None:
        with self._lock:
            return rng.choice(self._pool) if self._pool else None

    def _create(self, client, rng) -> Outcome:
        short = rng.random() < 0.5
        body = {"Image": "busybox", "Cmd": ["sh", "-c", "sleep 0.3"] if short else ["sleep", "300"],
                "Labels": {"berth.faults": "short" if short else "long"}, "HostConfig": {}}
        if rng.random() < 0.3:
            body["Volumes"] = {"/data": {}}
        r = client._post_json(client._url("/containers/create"), data=body)
        if r.status_code == 201:
            cid = r.json()["Id"]
            with self._lock:
                self._pool.append(cid)
            return Outcome("create", cid, 201)
        return Outcome("create", "", r.status_code)

    @staticmethod
    def _simple(op: str, method: str, path: str, params=None):
        def call(self, client, rng) -> Outcome | None:
            cid = self._pick(rng)
            if cid is None:
                return None
            url = client._url(path, cid)
            r = client._post(url, params=params) if method == "POST" else client._delete(url, params=params)
            if op == "rm" and r.status_code in (204, 404):
                with self._lock:
                    if cid in self._pool:
                        self._pool.remove(cid)
            return Outcome(op, cid, r.status_code)
        return call

    def _exec(self, client, rng) -> Outcome | None:
        cid = self._pick(rng)
        if cid is None:
            return None
        r = client._post_json(client._url("/containers/{0}/exec", cid), data={"Cmd": ["true"]})
        if r.status_code != 201:
            return Outcome("exec", cid, r.status_code)
        eid = r.json()["Id"]
        r = client._post_json(client._url("/exec/{0}/start", eid), data={"Detach": True})
        return Outcome("exec", eid, r.status_code)

    def _volume_create(self, client, rng) -> Outcome:
        with self._lock:
            self._names += 1
            name = f"faultvol{self._names}"
        r = client._post_json(client._url("/volumes/create"), data={"Name": name})
        if r.status_code == 201:
            with self._lock:
                self._volumes.append(name)
        return Outcome("volume-create", name, r.status_code)

    def _volume_rm(self, client, rng) -> Outcome | None:
        with self._lock:
            name = rng.choice(self._volumes) if self._volumes else None
        if name is None:
            return None
        r = client._delete(client._url("/volumes/{0}", name))
        if r.status_code in (204, 404):
            with self._lock:
                if name in self._volumes:
                    self._volumes.remove(name)
        return Outcome("volume-rm", name, r.status_code)

    @staticmethod
    def _network(op: str):
        def call(self, client, rng) -> Outcome | None:
            cid = self._pick(rng)
            if cid is None:
                return None
            r = client._post_json(client._url("/networks/{0}/" + op, NETWORK), data={"Container": cid})
            return Outcome(op, cid, r.status_code)
        return call

    # ---------------------------------------------------------------------------------- judging

    def _settle(self) -> None:
        """Short-lived containers finish (so that stopping the daemon leaves only long-lived ones)."""
        import docker
        client = docker.APIClient(base_url=self.d.host, version="1.45", timeout=CALL_TIMEOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                busy = client.containers(filters={"label": "berth.faults=short", "status": "running"})
                if not busy:
                    return
                time.sleep(0.2)
            self.report.problems.append(f"short-lived containers still running after 30 s: {len(busy)}")
        finally:
            client.close()

    def _judge(self) -> None:
        self._settle()
        if self.d.stop() != 0:
            self.report.problems.append("the daemon did not stop cleanly")
        self._check_log()
        self._check_runtime("after the run")

    def _check_log(self) -> None:
        db = sqlite3.connect(f"file:{os.path.join(self.d.data_root, 'berth.db')}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT type, action, actor_id, attributes FROM events").fetchall()
        finally:
            db.close()
        events = Counter()
        for type_, action, actor, attrs in rows:
            action = action.split(":")[0]           # moby's `exec_start: CMD ARGS`
            if type_ == "container" and action == "exec_start":
                actor = json.loads(attrs).get("execID", actor)
            if type_ == "network" and action in ("connect", "disconnect"):
                actor = json.loads(attrs).get("container", "")
            events[(type_, action, actor)] += 1
        wanted = Counter()
        for o in self.report.outcomes:
            if o.status is None or o.status >= 300 or o.status == 304 or o.op not in EXPECTED:
                continue
            type_, action = EXPECTED[o.op]
            wanted[(type_, action, o.target)] += 1
        for key, n in sorted(wanted.items()):
            if events[key] < n:
                self.report.problems.append(
                    f"{n} successful {key[1]} of {key[2][:12]} but {events[key]} {key[0]} {key[1]} event(s) in the log")

    def _check_runtime(self, when: str) -> None:
        r = subprocess.run([sys.executable, CLI, "admin", "check", "--data-root", self.d.data_root,
                            "--cgroup-parent", self.d.cgroup_parent], capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
        if r.returncode != 0:
            self.report.problems.append(f"admin check {when}:\n{r.stdout}{r.stderr}")
        sys.path.insert(0, ROOT)
        from app.runtime.host.processes import runtime_processes
        procs = runtime_processes(os.path.join(self.d.data_root, "runc"), os.path.join(self.d.data_root, "exits"))
        for cid, pids in procs.items():
            conmons = [p for p in pids if _prog(p).startswith("conmon")]
            if len(conmons) > 1:
                self.report.problems.append(f"container {cid[:12]} is managed twice: conmons {conmons} {when}")

    def _clean_up(self) -> None:
        """Remove everything the run made; what removal cannot remove is a problem too."""
        import docker
        try:
            self.d.start()
        except AssertionError as err:
            self.report.problems.append(f"the daemon did not come back for the clean-up: {err}")
            return
        client = docker.APIClient(base_url=self.d.host, version="1.45", timeout=120)
        try:
            for c in client.containers(all=True):
                client.remove_container(c["Id"], force=True, v=True)
            for v in client.volumes().get("Volumes") or []:
                client.remove_volume(v["Name"], force=True)
            client.remove_network(NETWORK)
        except docker.errors.DockerException as err:
            self.report.problems.append(f"clean-up: {err}")
        finally:
            client.close()
        if self.d.stop() != 0:
            self.report.problems.append("the daemon did not stop cleanly after the clean-up")
        self._check_runtime("after the clean-up")
        leftovers = [e for e in os.listdir(os.path.join(self.d.data_root, "runc"))]
        if leftovers:
            self.report.problems.append(f"runc state left after the clean-up: {leftovers}")


def _answered(err: Exception) -> bool:
    return getattr(getattr(err, "response", None), "status_code", None) is not None


def _status(err: Exception) -> int:
    return err.response.status_code


def _prog(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return os.path.basename(fh.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return ""


OPS = {   # name -> (call, weight)
    "create": (Harness._create, 5),
    "start": (Harness._simple("start", "POST", "/containers/{0}/start"), 5),
    "stop": (Harness._simple("stop", "POST", "/containers/{0}/stop", {"t": 1}), 2),
    "kill": (Harness._simple("kill", "POST", "/containers/{0}/kill"), 2),
    "restart": (Harness._simple("restart", "POST", "/containers/{0}/restart", {"t": 1}), 1),
    "rm": (Harness._simple("rm", "DELETE", "/containers/{0}", {"force": 1, "v": 1}), 2),
    "exec": (Harness._exec, 2),
    "volume-create": (Harness._volume_create, 1),
    "volume-rm": (Harness._volume_rm, 1),
    "connect": (Harness._network("connect"), 1),
    "disconnect": (Harness._network("disconnect"), 1),
}

EXPECTED = {   # a 2xx answer to the operation -> the event the log must hold for its target
    "create": ("container", "create"), "start": ("container", "start"), "stop": ("container", "stop"),
    "kill": ("container", "kill"), "restart": ("container", "restart"), "rm": ("container", "destroy"),
    "exec": ("container", "exec_start"), "volume-create": ("volume", "create"),
    "volume-rm": ("volume", "destroy"), "connect": ("network", "connect"),
    "disconnect": ("network", "disconnect"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tests.integration.conftest import Daemon, TEST_PREFIX, cleanup_network
    base = tempfile.mkdtemp(prefix=os.path.basename(TEST_PREFIX) + "faults-", dir=os.path.dirname(TEST_PREFIX))
    d = Daemon(base)
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), os.path.join(base, "bb.tar")],
                   check=True, capture_output=True)
    harness = Harness(d, os.path.join(base, "bb.tar"), args.ops, args.kills, args.clients, args.seed)
    try:
        report = harness.run()
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
            cleanup_network(d.net)
        d.net.release()
    print(json.dumps({"seed": harness.seed, **report.summary()}, indent=2))
    shutil.rmtree(base, ignore_errors=True)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
