"""The projections against what the host reports, for one data root (`berth admin check`).

Read only: nothing here changes the host. Each difference is one line naming the container, volume or
network and what disagrees. What is compared:

- containers the log shows running or paused: runc's state dir, a live `runc init` pid, a live conmon,
  the rootfs mounted;
- every other container: none of those, no cgroup, no conmon or runc process of this data root;
- runtime objects the log does not know: runc state dirs, container dirs, conmons, rootfs mounts;
- volumes: recorded users must be running; local-driver mounts exist exactly while a user runs;
  mounts under the volumes dir for volumes the log does not know;
- networks: a network's bridge is up only while a running container is attached; veths on our
  bridges belong to running containers' endpoints; our DNAT chain holds exactly the published ports of
  running containers.

With the daemon running, an operation in flight can show as a difference; run it on a quiet daemon or
a stopped one for an exact answer.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

from app.projections import containers as cq
from app.projections import networks as nq
from app.projections import volumes as vq
from app.runtime.containers.recovery import init_pid
from app.runtime.host.cgroups import cgroup_dirs
from app.runtime.host.processes import ID_RE, runtime_processes
from app.runtime.network import ports as portmod


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    with open(mountinfo) as fh:
        return {_unescape(line.split()[4]) for line in fh if line.strip()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


class RuntimeCheck:
    def __init__(self, db, data_root: str, cgroup_parent: str = "berth", iptables: str = "iptables"):
        self.db = db                    # a connection to the store's database (sqlite3.Row rows)
        self.data_root = os.path.abspath(data_root)
        self.runc_root = os.path.join(self.data_root, "runc")
        self.exits_dir = os.path.join(self.data_root, "exits")
        self.containers_dir = os.path.join(self.data_root, "containers")
        self.volumes_dir = os.path.join(self.data_root, "volumes")
        self.cgroup_parent = cgroup_parent
        self.iptables = iptables

    def differences(self) -> list[str]:
        self.db.execute("BEGIN")        # one moment of the projections for all the comparisons
        try:
            live = set(cq.container_ids(self.db, states=cq.LIVE_STATES))
            known = set(cq.container_ids(self.db))
            mounts = mount_points()
            out = self._containers(live, known, mounts)
            out += self._volumes(live, mounts)
            out += self._networks(live)
        finally:
            self.db.execute("ROLLBACK")
        return out

    # ---------------------------------------------------------------------------------- containers

    def _containers(self, live: set[str], known: set[str], mounts: set[str]) -> list[str]:
        out = []
        procs = runtime_processes(self.runc_root, self.exits_dir)
        runc_dirs = {d for d in _listdir(self.runc_root) if ID_RE.match(d)}
        dirs = {d for d in _listdir(self.containers_dir) if ID_RE.match(d)}
        for cid in sorted(known):
            bundle = os.path.join(self.containers_dir, cid)
            rootfs = os.path.join(bundle, "rootfs")
            conmon = _read_int(os.path.join(bundle, "userdata", "conmon.pid"))
            conmon_alive = bool(conmon) and _alive(conmon)
            state = cq.container_state(self.db, cid)
            if cid in live:
                if cid not in dirs:                 # made at the first start
                    out.append(f"container {cid[:12]} is {state} in the log but its directory {bundle} is missing")
                init = init_pid(self.runc_root, cid)
                if cid not in runc_dirs:
                    out.append(f"container {cid[:12]} is {state} in the log but runc has no state for it")
                elif not init or not _alive(init):
                    out.append(f"container {cid[:12]} is {state} in the log but its process is gone")
                if not conmon_alive:
                    out.append(f"container {cid[:12]} is {state} in the log but its conmon is not running")
                if rootfs not in mounts:
                    out.append(f"container {cid[:12]} is {state} in the log but its rootfs is not mounted")
                continue
            if cid in runc_dirs:
                out.append(f"container {cid[:12]} is {state} in the log but runc still has state for it")
            if conmon_alive:
                out.append(f"container {cid[:12]} is {state} in the log but its conmon (pid {conmon}) runs")
            if procs.get(cid):
                out.append(f"container {cid[:12]} is {state} in the log but runtime processes run: "
                           f"{sorted(procs[cid])}")
            if rootfs in mounts:
                out.append(f"container {cid[:12]} is {state} in the log but its rootfs is mounted")
            if cgroup_dirs(self.cgroup_parent, cid):
                out.append(f"container {cid[:12]} is {state} in the log but its cgroup exists")
        for cid in sorted(runc_dirs - known):
            out.append(f"runc has state for {cid[:12]}, a container the log does not know")
        for cid in sorted(dirs - known):
            out.append(f"directory {os.path.join(self.containers_dir, cid)} belongs to no container the log knows")
        for cid in sorted(set(procs) - known):
            out.append(f"runtime processes {sorted(procs[cid])} run for {cid[:12]}, a container the log does not know")
        prefix = self.containers_dir + os.sep
        for point in sorted(mounts):
            if point.startswith(prefix) and point.endswith(os.sep + "rootfs"):
                cid = point[len(prefix):].split(os.sep)[0]
                if cid not in known:
                    out.append(f"{point} is mounted for {cid[:12]}, a container the log does not know")
        return out

    # ---------------------------------------------------------------------------------- volumes

    def _volumes(self, live: set[str], mounts: set[str]) -> list[str]:
        out = []
        volumes = {v.name: v for v in vq.list_volumes(self.db)}
        for name, v in sorted(volumes.items()):
            users = vq.mounted_by(self.db, name)
            for cid in users:
                if cid not in live:
                    out.append(f"volume {name}: recorded as mounted by {cid[:12]}, which is not running")
            path = os.path.join(self.volumes_dir, name, "_data")
            needs_mount = bool(v.options.get("type")) and v.driver == "local"
            running_users = [c for c in users if c in live]
            if needs_mount and running_users and path not in mounts:
                out.append(f"volume {name}: used by a running container but its {v.options['type']} is not mounted")
            if path in mounts and not running_users:
                out.append(f"volume {name}: {path} is mounted but no running container uses it")
        prefix = self.volumes_dir + os.sep
        for point in sorted(mounts):
            if point.startswith(prefix):
                name = point[len(prefix):].split(os.sep)[0]
                if name not in volumes:
                    out.append(f"{point} is mounted for volume {name}, which the log does not know")
        return out

    # ---------------------------------------------------------------------------------- networks

    def _networks(self, live: set[str]) -> list[str]:
        out = []
        nets = [n for n in nq.list_networks(self.db) if n.bridge]
        if not nets:
            return out
        attached: dict[str, set[str]] = {}      # bridge -> host-side veths of running containers
        dnat: list[str] = []
        for cid in sorted(live):
            try:
                with open(os.path.join(self.containers_dir, cid, "network.json")) as fh:
                    saved = json.load(fh)
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                out.append(f"container {cid[:12]}: its network.json cannot be read")
                continue
            by_id = {n.id: n for n in nets}
            for nid, host_if in (saved.get("ifaces") or {}).items():
                if nid in by_id:
                    attached.setdefault(by_id[nid].bridge, set()).add(host_if)
            bindings = [portmod.Binding(*b) for b in saved.get("bindings", [])]
            dnat += portmod.dnat_rules(bindings, saved.get("ip", ""))
        for n in nets:
            ports = set(_listdir(f"/sys/class/net/{n.bridge}/brif"))
            up = os.path.exists(f"/sys/class/net/{n.bridge}")
            wanted = attached.get(n.bridge, set())
            if up and not wanted:
                out.append(f"network {n.name}: bridge {n.bridge} is up but no running container is attached")
            if wanted and not up:
                out.append(f"network {n.name}: running containers are attached but bridge {n.bridge} is missing")
            for extra in sorted(ports - wanted):
                out.append(f"network {n.name}: {extra} on {n.bridge} belongs to no running container")
            for missing in sorted(wanted - ports):
                out.append(f"network {n.name}: a running container's {missing} is not on {n.bridge}")
        default = next((n for n in nets if n.name == "bridge"), None)
        if default is not None:
            out += self._dnat(f"BERTH-DNAT-{default.bridge}", dnat)
        return out

    def _dnat(self, chain: str, wanted: list[str]) -> list[str]:
        try:
            proc = subprocess.run([self.iptables, "-t", "nat", "-S", chain], capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return []                           # no iptables here: nothing berth could have written
        if proc.returncode != 0:
            return [f"published ports of running containers have no rule: chain {chain} is missing"] if wanted else []
        prefix = f"-A {chain} "
        rules = [line[len(prefix):] for line in proc.stdout.splitlines() if line.startswith(prefix)]
        out = []
        for extra in sorted((Counter(rules) - Counter(wanted)).elements()):
            out.append(f"iptables nat {chain}: rule for no running container's port: {extra}")
        for missing in sorted((Counter(wanted) - Counter(rules)).elements()):
            out.append(f"iptables nat {chain}: a running container's published port has no rule: {missing}")
        return out

