"""The field names of Docker's container Config and HostConfig (engine-api-v1.45.yaml).

moby decodes create requests with Go's encoding/json: key case does not matter (docker-py sends
`CPURealtimeRuntime`, stored as `CpuRealtimeRuntime`) and unknown keys are dropped (docker-py puts
`Runtime` in Config, where Docker ignores it). `canonical_keys` does the same, so berth stores,
checks and shows the request under the spec's spelling.
"""
from __future__ import annotations

CONFIG_KEYS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
)

RESOURCES_KEYS = (
    "CpuShares", "Memory", "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota",
    "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules",
    "DeviceRequests", "KernelMemory", "KernelMemoryTCP", "MemoryReservation", "MemorySwap", "MemorySwappiness",
    "NanoCpus", "OomKillDisable", "Init", "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps",
    "IOMaximumBandwidth",
)

HOST_CONFIG_KEYS = RESOURCES_KEYS + (
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
    "VolumeDriver", "VolumesFrom", "Mounts", "ConsoleSize", "Annotations", "CapAdd", "CapDrop", "CgroupnsMode",
    "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links", "OomScoreAdj",
    "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "StorageOpt", "Tmpfs", "UTSMode",
    "UsernsMode", "ShmSize", "Sysctls", "Runtime", "Isolation", "MaskedPaths", "ReadonlyPaths",
)

_LOWER = {keys: {k.lower(): k for k in keys} for keys in (CONFIG_KEYS, HOST_CONFIG_KEYS)}


def canonical_keys(body: dict, keys: tuple[str, ...]) -> dict:
    """Known top-level keys under the spec's spelling (matched case-insensitively); others dropped.
    An exact-case key wins over a differently cased duplicate, as Go's decoder prefers it."""
    table = _LOWER.get(keys) or {k.lower(): k for k in keys}
    out: dict = {}
    exact: set[str] = set()
    for key, value in body.items():
        name = table.get(key.lower())
        if name is None or (name in exact and key != name):
            continue
        out[name] = value
        if key == name:
            exact.add(name)
    return out
