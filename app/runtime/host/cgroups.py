"""Container cgroups, in every hierarchy (cgroup v1 controllers, the named systemd one, v2): find,
kill everything inside, remove; read their counters (stats)."""
from __future__ import annotations

import errno
import logging
import os
import signal
import time

CGROUP_ROOT = "/sys/fs/cgroup"
log = logging.getLogger("berth")


def cgroup_dirs(cgroup_parent: str, cid: str) -> list[str]:
    """The container's cgroup in every hierarchy that has one (cgroup v1 controllers, the named
    systemd hierarchy, the unified v2 mount)."""
    try:
        hierarchies = os.listdir(CGROUP_ROOT)
    except FileNotFoundError:
        return []
    found = []
    for hierarchy in hierarchies:
        path = os.path.join(CGROUP_ROOT, hierarchy, cgroup_parent, cid)
        if os.path.isdir(path):
            found.append(path)
    return found


def _cgroup_pids(path: str) -> list[int]:
    pids = []
    for dirpath, _, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as fh:
                    pids += [int(line) for line in fh if line.strip()]
            except OSError:
                pass
    return pids


def kill_cgroup(cgroup_parent: str, cid: str, timeout: float = 5) -> set[int]:
    """SIGKILL everything in the container's cgroups (a `runc init` nobody released, a process a
    killed conmon left), then remove the cgroups. A frozen cgroup is thawed first: a frozen process
    cannot die. Returns the pids it killed (the caller reaps those that were re-parented to it)."""
    dirs = cgroup_dirs(cgroup_parent, cid)
    killed: set[int] = set()
    if not dirs:
        return killed
    for path in dirs:
        if path.startswith(os.path.join(CGROUP_ROOT, "freezer") + "/"):
            try:
                with open(os.path.join(path, "freezer.state"), "w") as fh:
                    fh.write("THAWED")
            except OSError:
                pass
    deadline = time.monotonic() + timeout
    while True:
        pids = {pid for path in dirs for pid in _cgroup_pids(path)}
        killed |= pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.01)        # killed processes leave the cgroup once they have exited
    for path in dirs:
        for dirpath, _, _ in sorted(os.walk(path), key=lambda item: len(item[0]), reverse=True):
            for _ in range(100):            # EBUSY while a killed process is still on its way out
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("cgroup %s left behind: %s", dirpath, err)
                        break
                    time.sleep(0.01)
    return killed


class Cgroups:
    """The adapter the engine hands to the container services: cgroups under one parent."""

    def __init__(self, parent: str):
        self.parent = parent

    def dirs(self, cid: str) -> list[str]:
        return cgroup_dirs(self.parent, cid)

    def kill(self, cid: str, timeout: float = 5) -> set[int]:
        return kill_cgroup(self.parent, cid, timeout)

    def path(self, cid: str) -> str:
        """The cgroupsPath of a container's OCI spec."""
        return f"/{self.parent}/{cid}"

    def stats(self, cid: str) -> dict | None:
        """The container's cgroup counters in Docker's shape (`read_stats`), None when it has none."""
        return read_stats(self.parent, cid)

    def system_cpu(self) -> tuple[int, int]:
        return system_cpu_usage()

    def networks(self, pid: int) -> dict | None:
        return read_net_dev(pid)

    def available(self, kind: str) -> str:
        return available_cpuset(kind)

    def remove_parent(self) -> None:
        """At shutdown: drop our parent cgroup where it is empty."""
        for controller in os.listdir(CGROUP_ROOT) if os.path.isdir(CGROUP_ROOT) else ():
            try:
                os.rmdir(os.path.join(CGROUP_ROOT, controller, self.parent))
            except OSError:
                pass


# ------------------------------------------------------------------------------------------ statistics
# What `GET /containers/{id}/stats` reports, read as moby's daemon/stats_unix.go gets it from
# containerd's cgroups package: v1 controllers (this machine) or the unified v2 hierarchy.

NANOS = 1_000_000_000
MEMORY_V1_KEYS = (
    "active_anon", "active_file", "cache", "dirty", "hierarchical_memory_limit", "hierarchical_memsw_limit",
    "inactive_anon", "inactive_file", "mapped_file", "pgfault", "pgmajfault", "pgpgin", "pgpgout", "rss",
    "rss_huge", "total_active_anon", "total_active_file", "total_cache", "total_dirty", "total_inactive_anon",
    "total_inactive_file", "total_mapped_file", "total_pgfault", "total_pgmajfault", "total_pgpgin",
    "total_pgpgout", "total_rss", "total_rss_huge", "total_unevictable", "total_writeback", "unevictable",
    "writeback")
MEMORY_V2_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
    "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
    "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate",
    "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc")
BLKIO_V1 = (("io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive"),
            ("io_serviced_recursive", "blkio.throttle.io_serviced_recursive"))
_CFQ_BLKIO_V1 = (("io_service_bytes_recursive", "blkio.io_service_bytes_recursive"),
                 ("io_serviced_recursive", "blkio.io_serviced_recursive"),
                 ("io_queue_recursive", "blkio.io_queued_recursive"),
                 ("io_service_time_recursive", "blkio.io_service_time_recursive"),
                 ("io_wait_time_recursive", "blkio.io_wait_time_recursive"),
                 ("io_merged_recursive", "blkio.io_merged_recursive"),
                 ("io_time_recursive", "blkio.time_recursive"),
                 ("sectors_recursive", "blkio.sectors_recursive"))
BLKIO_KEYS = tuple(key for key, _ in _CFQ_BLKIO_V1)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _uint(path: str) -> int | None:
    """A counter file; "max" (no limit) reads as None, as does a missing file."""
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    try:
        return max(int(text), 0)
    except ValueError:
        return None


def _keyed(path: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat)."""
    out = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _blkio_v1(path: str) -> list[dict] | None:
    """`MAJ:MIN Op value` lines; the per-file `Total` line is left out, as containerd does."""
    text = _read(path)
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        except ValueError:
            continue
    return out


def system_cpu_usage(proc_stat: str = "/proc/stat") -> tuple[int, int]:
    """(host CPU time in ns, online CPUs) as moby's collector computes them: the first seven fields
    of /proc/stat's `cpu` line (user … softirq) in clock ticks, and the number of `cpuN` lines."""
    total, cpus = 0, 0
    for line in (_read(proc_stat) or "").splitlines():
        if len(line) < 4 or not line.startswith("cpu"):
            break
        if line[3] == " ":
            fields = line.split()
            if len(fields) >= 8:
                total = sum(int(v) for v in fields[1:8]) * NANOS // CLOCK_TICKS
        elif line[3].isdigit():
            cpus += 1
    return total, cpus


def is_unified(root: str = CGROUP_ROOT) -> bool:
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def read_stats(cgroup_parent: str, cid: str, root: str = CGROUP_ROOT) -> dict | None:
    """The container's cgroup counters in Docker's shape (the parts of a stats sample the cgroup gives:
    cpu_stats.cpu_usage/throttling_data, memory_stats, pids_stats, blkio_stats), or None when its
    cgroup is gone."""
    if is_unified(root):
        return _read_v2(os.path.join(root, cgroup_parent, cid))
    return _read_v1(root, cgroup_parent, cid)


def _read_v1(root: str, parent: str, cid: str) -> dict | None:
    def d(controller: str) -> str:
        return os.path.join(root, controller, parent, cid)

    if not any(os.path.isdir(d(c)) for c in ("memory", "cpuacct", "pids")):
        return None
    cpuacct = _keyed(os.path.join(d("cpuacct"), "cpuacct.stat"))
    percpu = (_read(os.path.join(d("cpuacct"), "cpuacct.usage_percpu")) or "").split()
    cpu_usage = {"total_usage": _uint(os.path.join(d("cpuacct"), "cpuacct.usage")) or 0,
                 "usage_in_kernelmode": cpuacct.get("system", 0) * NANOS // CLOCK_TICKS,
                 "usage_in_usermode": cpuacct.get("user", 0) * NANOS // CLOCK_TICKS}
    if percpu:
        cpu_usage["percpu_usage"] = [int(v) for v in percpu if v.isdigit()]
    throttle = _keyed(os.path.join(d("cpu"), "cpu.stat"))
    memory = {}
    if os.path.isdir(d("memory")):
        raw = _keyed(os.path.join(d("memory"), "memory.stat"))
        memory = {"usage": _uint(os.path.join(d("memory"), "memory.usage_in_bytes")) or 0,
                  "max_usage": _uint(os.path.join(d("memory"), "memory.max_usage_in_bytes")) or 0,
                  "stats": {k: raw[k] for k in MEMORY_V1_KEYS if k in raw},
                  "failcnt": _uint(os.path.join(d("memory"), "memory.failcnt")) or 0,
                  "limit": _uint(os.path.join(d("memory"), "memory.limit_in_bytes")) or 0}
    cfq = os.path.exists(os.path.join(d("blkio"), "blkio.io_serviced_recursive"))
    blkio = {key: None for key in BLKIO_KEYS}
    for key, name in (_CFQ_BLKIO_V1 if cfq else BLKIO_V1):
        blkio[key] = _blkio_v1(os.path.join(d("blkio"), name)) or None
    return {"cpu_usage": cpu_usage,
            "throttling_data": {"periods": throttle.get("nr_periods", 0),
                                "throttled_periods": throttle.get("nr_throttled", 0),
                                "throttled_time": throttle.get("throttled_time", 0)},
            "memory": memory,
            "pids": {"current": _uint(os.path.join(d("pids"), "pids.current")) or 0,
                     "limit": _uint(os.path.join(d("pids"), "pids.max")) or 0},
            "blkio": blkio}


def _read_v2(path: str) -> dict | None:
    if not os.path.isdir(path):
        return None
    cpu = _keyed(os.path.join(path, "cpu.stat"))
    raw = _keyed(os.path.join(path, "memory.stat"))
    events = _keyed(os.path.join(path, "memory.events"))
    limit = _uint(os.path.join(path, "memory.max"))
    io = []
    for line in (_read(os.path.join(path, "io.stat")) or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        values = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        try:
            io += [{"major": int(major), "minor": int(minor), "op": "read", "value": int(values.get("rbytes", 0))},
                   {"major": int(major), "minor": int(minor), "op": "write", "value": int(values.get("wbytes", 0))}]
        except ValueError:
            continue
    blkio = {key: None for key in BLKIO_KEYS}
    blkio["io_service_bytes_recursive"] = io or None
    return {"cpu_usage": {"total_usage": cpu.get("usage_usec", 0) * 1000,
                          "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                          "usage_in_usermode": cpu.get("user_usec", 0) * 1000},
            "throttling_data": {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                                "throttled_time": cpu.get("throttled_usec", 0) * 1000},
            "memory": {"usage": _uint(os.path.join(path, "memory.current")) or 0,
                       "stats": {k: raw[k] for k in MEMORY_V2_KEYS if k in raw},
                       "failcnt": events.get("oom", 0),
                       "limit": limit if limit is not None else (1 << 64) - 1},
            "pids": {"current": _uint(os.path.join(path, "pids.current")) or 0,
                     "limit": _uint(os.path.join(path, "pids.max")) or 0},
            "blkio": blkio}


def read_net_dev(pid: int) -> dict[str, dict] | None:
    """The interfaces of a process's network namespace but loopback (moby reports the sandbox's
    interfaces, never lo), from /proc/<pid>/net/dev; None when there are none."""
    text = _read(f"/proc/{pid}/net/dev")
    if not text:
        return None
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if not sep or name == "lo" or len(values) < 16:
            continue
        v = [int(x) for x in values[:16]]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out or None


_AVAILABLE: dict[str, str] = {}


def available_cpuset(kind: str, root: str = CGROUP_ROOT) -> str:
    """The CPUs ("cpus") or memory nodes ("mems") containers may be given: the root cpuset's (moby's
    sysinfo reads the same files)."""
    if kind not in _AVAILABLE:
        names = ((f"cpuset/cpuset.effective_{kind}", f"cpuset/cpuset.{kind}") if not is_unified(root)
                 else (f"cpuset.{kind}.effective",))
        value = next((t.strip() for t in (_read(os.path.join(root, n)) for n in names) if t and t.strip()), None)
        if value is None:
            value = (_ranges(sorted(os.sched_getaffinity(0))) if kind == "cpus" else "0")
        _AVAILABLE[kind] = value
    return _AVAILABLE[kind]


def _ranges(numbers: list[int]) -> str:
    out, start, prev = [], None, None
    for n in numbers + [None]:
        if start is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ",".join(out)
