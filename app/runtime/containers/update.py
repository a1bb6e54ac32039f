"""`POST /containers/{id}/update` (`docker update`): new resource limits for a container, as moby's
daemon/update.go and container.UpdateContainer decide them.

The request is validated as create validates limits (spec.resources_from) and merged into the stored
HostConfig with moby's rules; a live container (running or paused) gets the merged limits through
`runc update` first, so a value the kernel refuses fails the request and nothing is recorded. Then
`update` is appended with the changed keys (the containers projector merges them into host_config),
so inspect shows them and the next start applies them.
"""
from __future__ import annotations

from app.errors import Conflict, InvalidParameter, SystemError_
from app.events.model import NewEvent
from app.runtime.containers.createkeys import HOST_CONFIG, REFUSED, refuse_unapplied
from app.runtime.containers.spec import resources_from
from app.runtime.restart import policy as restart_policy
from app.runtime.host.runc import RuncError

# The keys of container.UpdateConfig that moby's UpdateContainer applies; the other Resources keys it
# decodes and drops, which berth refuses by name instead.
UPDATABLE = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
             "Memory", "MemorySwap", "MemoryReservation", "KernelMemory", "CpuRealtimePeriod",
             "CpuRealtimeRuntime", "PidsLimit")
RESOURCE_KEYS = ("CpuShares", "Memory", "NanoCpus", "CgroupParent", "BlkioWeight", "BlkioWeightDevice",
                 "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
                 "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems",
                 "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemory", "KernelMemoryTCP",
                 "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit", "Ulimits",
                 "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth")


def _given(value) -> bool:
    return value not in (None, 0, "", [], {}, False)


def check_request(body: dict) -> dict:
    """The keys of an UpdateConfig that ask for something, after refusing what berth does not apply:
    a key create refuses (createkeys.py), a Resources key only create can set, a RestartPolicy."""
    wanted = {k: v for k, v in body.items() if k in RESOURCE_KEYS and _given(v)}
    if body.get("PidsLimit") is not None:           # a pointer in moby: 0 and -1 mean "unlimited"
        wanted["PidsLimit"] = body["PidsLimit"]
    for key in wanted:
        if key not in UPDATABLE:
            raise InvalidParameter(f"berth does not support updating HostConfig.{key}: it is set at create")
    refuse_unapplied({}, {k: v for k, v in wanted.items() if HOST_CONFIG[k].status == REFUSED}, {})
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        restart_policy.validate(policy)         # applied at the next exit (app/runtime/restart/service.py)
        wanted["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
    wanted.pop("KernelMemory", None)                # ignored since API 1.42, as create ignores it
    return wanted


def merge(cid: str, current: dict, update: dict) -> dict:
    """moby's Container.UpdateContainer: the changed HostConfig keys, or its Conflict."""
    def conflict(message: str) -> Conflict:
        return Conflict(f"Cannot update container {cid}: Conflicting options: {message}")

    cur = lambda key: int(current.get(key) or 0)            # noqa: E731
    new = lambda key: int(update.get(key) or 0)             # noqa: E731
    if new("NanoCpus") > 0 and cur("CpuPeriod") > 0:
        raise conflict("Nano CPUs cannot be updated as CPU Period has already been set")
    if new("NanoCpus") > 0 and cur("CpuQuota") > 0:
        raise conflict("Nano CPUs cannot be updated as CPU Quota has already been set")
    if new("CpuPeriod") > 0 and cur("NanoCpus") > 0:
        raise conflict("CPU Period cannot be updated as NanoCPUs has already been set")
    if new("CpuQuota") > 0 and cur("NanoCpus") > 0:
        raise conflict("CPU Quota cannot be updated as NanoCPUs has already been set")
    changes = {k: v for k, v in update.items() if k != "PidsLimit"}
    if "PidsLimit" in update:
        changes["PidsLimit"] = max(int(update["PidsLimit"]), 0)      # moby stores "unlimited" as 0
    if new("Memory"):
        # the swap in force: the stored one, or Docker's default of twice the memory limit
        swap = cur("MemorySwap") or 2 * cur("Memory")
        if swap > 0 and new("Memory") > swap and not new("MemorySwap"):
            raise Conflict(f"Cannot update container {cid}: Memory limit should be smaller than already set "
                           "memoryswap limit, update the memoryswap at the same time")
        if not new("MemorySwap") and cur("Memory"):
            changes["MemorySwap"] = swap                     # kept, as moby keeps the stored value
    if "RestartPolicy" in update and update["RestartPolicy"]["Name"] != "no" and current.get("AutoRemove"):
        raise Conflict(f"Cannot update container {cid}: Conflicting options: Restart policy cannot be updated "
                       "because AutoRemove is enabled for the container")
    return changes


def runc_resources(merged: dict, update: dict, available=None) -> dict:
    """The OCI linux.resources `runc update` gets: every limit in force after the update (runc treats
    an absent value as "unchanged"), plus explicit "unlimited" values where the update lifts a limit."""
    resources = resources_from(merged, available=available)
    if "PidsLimit" in update and int(update["PidsLimit"]) <= 0:
        resources["pids"] = {"limit": -1}
    if int(update.get("MemorySwap") or 0) == -1:
        resources.setdefault("memory", {})["swap"] = -1
    return resources


class UpdateMixin:
    def update(self, ref: str, body: dict) -> list[str]:
        """Apply an UpdateConfig to a container; Docker's Warnings (none so far)."""
        wanted = check_request(body)
        # what the request itself asks, checked as create checks it (moby's verifyContainerSettings with
        # update=true: a swap without a memory limit in the same request is judged on the merged config)
        alone = {k: v for k, v in wanted.items() if k != "MemorySwap" or wanted.get("Memory")}
        resources_from(alone, available=self.cgroups.available)
        with self._locked_row(ref) as row:
            if row.state in ("removing", "dead"):
                raise Conflict(f'Cannot update container {row.id}: container is marked for removal and cannot '
                               f'be "update"')
            changes = merge(row.id, row.host_config, wanted)
            if not changes:
                return []
            merged = {**row.host_config, **changes}
            resources = runc_resources(merged, wanted, self.cgroups.available)
            if row.is_live and resources:
                try:
                    self.runc.update(row.id, resources)
                except RuncError as err:
                    raise SystemError_(f"Cannot update container {row.id}: {err.message}") from None
            self._record(row, [NewEvent("container", "update", row.id, self._attrs(row),
                                        payload={"host_config": changes})])
        return []
