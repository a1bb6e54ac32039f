"""`GET /containers/{id}/stats` (`docker stats`): samples of a container's cgroup counters in moby's
container.StatsResponse shape (daemon/stats.go, daemon/stats_unix.go, daemon/stats/collector.go).

The counters come from the host adapter (host/cgroups.py: v1 controllers or v2), `system_cpu_usage`
and `online_cpus` from /proc/stat as moby's collector computes them, the memory limit is capped at the
machine's memory as moby caps it. A container that is not running gives moby's zeroed sample (name
and ID only). `networks` appear when the container's network namespace has an interface besides lo.
"""
from __future__ import annotations

import time

from app.common.timeparse import rfc3339_nano
from app.projections.containers import Container
from app.runtime.host.cgroups import BLKIO_KEYS
from app.runtime.host.hostinfo import mem_total

ZERO_TIME = "0001-01-01T00:00:00Z"
INTERVAL = 1.0                 # seconds between streamed samples (moby's collector interval)
PRIME = 0.5                    # stream=0: the second read that gives precpu_stats its values


def _zero_cpu() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def zero_sample(row: Container) -> dict:
    """What moby sends for a container that is not running: its name and ID, every counter zero."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
            "blkio_stats": {key: None for key in BLKIO_KEYS}, "num_procs": 0, "storage_stats": {},
            "cpu_stats": _zero_cpu(), "precpu_stats": _zero_cpu(), "memory_stats": {},
            "name": "/" + row.name, "id": row.id}


def _nonzero(d: dict) -> dict:
    """Go's omitempty over a flat struct."""
    return {k: v for k, v in d.items() if v not in (0, None, {}, [])}


class StatsMixin:
    def stats_sample(self, row: Container, previous: dict | None = None) -> dict:
        """One sample of a live container (moby's zeroed one when its cgroup is gone); `previous` (an
        earlier sample) gives precpu_stats and preread, as moby's stream carries them."""
        raw = self.cgroups.stats(row.id) if row.is_live else None
        if raw is None:
            return zero_sample(row)
        system, cpus = self.cgroups.system_cpu()
        read = time.time_ns()
        cpu = {"cpu_usage": raw["cpu_usage"], **_nonzero({"system_cpu_usage": system, "online_cpus": cpus}),
               "throttling_data": raw["throttling_data"]}
        memory = dict(raw["memory"])
        machine = mem_total()
        if machine and memory.get("limit", 0) > machine:
            memory["limit"] = machine                     # no limit set: the machine's memory
        if "stats" in memory:
            memory["stats"] = dict(sorted(memory["stats"].items()))
        sample = {"read": rfc3339_nano(read), "preread": previous["read"] if previous else ZERO_TIME,
                  "pids_stats": _nonzero(raw["pids"]), "blkio_stats": raw["blkio"], "num_procs": 0,
                  "storage_stats": {}, "cpu_stats": cpu,
                  "precpu_stats": previous["cpu_stats"] if previous else _zero_cpu(),
                  "memory_stats": _nonzero(memory), "name": "/" + row.name, "id": row.id}
        if row.network_mode not in ("host", "none") and row.pid:
            networks = self.cgroups.networks(row.pid)
            if networks:
                sample["networks"] = networks
        return sample

    def stats(self, cid: str, stream: bool, one_shot: bool, client_gone=lambda: False):
        """The samples of `GET /stats`: one (stream=0; with precpu from a second read PRIME seconds
        later unless one-shot), or one per INTERVAL until the client leaves, the daemon stops, the
        container is removed, or a container that was running during the stream stops."""
        row = self.get(cid)
        if row is None:
            return
        if not stream:
            if not row.is_live:
                yield zero_sample(row)
                return
            first = self.stats_sample(row)
            if one_shot or self._pause(PRIME, client_gone):
                yield first
                return
            row = self.get(cid) or row
            yield self.stats_sample(row, first) if row.is_live else first
            return
        previous, was_running = None, False
        while True:
            row = self.get(cid)
            if row is None or (was_running and not row.is_live):
                return
            was_running = was_running or row.is_live
            sample = self.stats_sample(row, previous) if row.is_live else zero_sample(row)
            yield sample
            previous = sample if row.is_live else None
            if self._pause(INTERVAL, client_gone):
                return

    def _pause(self, seconds: float, client_gone) -> bool:
        """Wait `seconds`; True if the client left or the daemon is stopping meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if client_gone() or self.closing.is_set():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.closing.wait(min(left, 0.1))
