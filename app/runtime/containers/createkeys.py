"""What berth does with every key of a create request: applied, refused until implemented, or ignored
by design (where Docker ignores it too). docs/architecture.md "Request validation" shows this table and
tests/unit/test_createkeys.py keeps the two the same.

A refused key passes with its zero value (`null`, `""`, `0`, `false`, `[]`, `{}`, an object of zero
values: what clients send for options nobody set) and with the values listed in `accepts`; anything
else is 400 `berth does not support HostConfig.Binds yet`, so a setting is never silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidParameter

APPLIED, REFUSED, IGNORED = "applied", "refused", "ignored"


@dataclass(frozen=True)
class Key:
    status: str
    note: str
    accepts: tuple = ()            # non-zero values a refused key still takes (the defaults they mean)
    message: str = ""              # Docker's own refusal, where it has one


def _a(note: str) -> Key:
    return Key(APPLIED, note)


def _r(note: str, accepts: tuple = (), message: str = "") -> Key:
    return Key(REFUSED, note, accepts, message)


def _i(note: str) -> Key:
    return Key(IGNORED, note)


CONFIG = {
    "Hostname": _a("UTS hostname and /etc/hostname"),
    "Domainname": _a("UTS domain name"),
    "User": _a("process uid/gid from the image's /etc/passwd and /etc/group"),
    "AttachStdin": _i("client-side: the client attaches; moby only stores it"),
    "AttachStdout": _i("client-side: the client attaches; moby only stores it"),
    "AttachStderr": _i("client-side: the client attaches; moby only stores it"),
    "ExposedPorts": _a("stored and shown (metadata, as `EXPOSE`); publishing is HostConfig.PortBindings"),
    "Tty": _a("a pseudo-terminal from conmon"),
    "OpenStdin": _a("stdin kept open for attach"),
    "StdinOnce": _a("stdin closed after the first attach ends"),
    "Env": _a("merged over the image's"),
    "Cmd": _a("the command"),
    "Healthcheck": _r("health checks come with supervision", ({"Test": ["NONE"]},)),
    "ArgsEscaped": _i("Windows-only (moby ignores it on Linux)"),
    "Image": _a("the image"),
    "Volumes": _a("anonymous volumes (app/runtime/volumes)"),
    "WorkingDir": _a("the process's cwd"),
    "Entrypoint": _a("the entrypoint"),
    "NetworkDisabled": _r("networking comes with networks"),
    "MacAddress": _a("the MAC address of the container's interface on its first network (deprecated form)"),
    "OnBuild": _a("stored (Docker uses it only when the container is committed)"),
    "Labels": _a("stored once, shown in inspect, ps and events"),
    "StopSignal": _a("the signal of stop"),
    "StopTimeout": _a("the default timeout of stop"),
    "Shell": _i("build-only: it changes how a Dockerfile's RUN is run, nothing at create"),
}

HOST_CONFIG = {
    # container.Resources
    "CpuShares": _a("cpu.shares (2..262144, runc's bounds)"),
    "Memory": _a("memory limit (at least 6 MB)"),
    "NanoCpus": _a("CFS quota over a 100 ms period"),
    "CgroupParent": _r("containers' cgroups are under the daemon's --cgroup-parent"),
    "BlkioWeight": _r("block I/O limits"),
    "BlkioWeightDevice": _r("block I/O limits"),
    "BlkioDeviceReadBps": _r("block I/O limits"),
    "BlkioDeviceWriteBps": _r("block I/O limits"),
    "BlkioDeviceReadIOps": _r("block I/O limits"),
    "BlkioDeviceWriteIOps": _r("block I/O limits"),
    "CpuPeriod": _a("CFS period"),
    "CpuQuota": _a("CFS quota"),
    "CpuRealtimePeriod": _r("real-time scheduling"),
    "CpuRealtimeRuntime": _r("real-time scheduling"),
    "CpusetCpus": _a("cpuset.cpus (within the host's CPUs)"),
    "CpusetMems": _a("cpuset.mems (within the host's memory nodes)"),
    "Devices": _a("device nodes and their cgroup rules"),
    "DeviceCgroupRules": _a("device cgroup rules"),
    "DeviceRequests": _r("GPU device requests"),
    "KernelMemory": _i("moby ignores it since API 1.42 (kernel memory accounting is deprecated)"),
    "KernelMemoryTCP": _r("kernel TCP memory limit"),
    "MemoryReservation": _a("memory soft limit (at least 6 MB, not above Memory)"),
    "MemorySwap": _a("memory+swap limit (-1 unlimited)"),
    "MemorySwappiness": _a("memory swappiness 0..100 (-1: the host's)"),
    "OomKillDisable": _a("the cgroup's OOM killer switched off"),
    "PidsLimit": _a("pids limit (0 or -1 unlimited)"),
    "Ulimits": _a("rlimits, clamped to the daemon's own hard limits"),
    "CpuCount": _r("Windows-only"),
    "CpuPercent": _r("Windows-only"),
    "IOMaximumIOps": _r("Windows-only"),
    "IOMaximumBandwidth": _r("Windows-only"),
    # container.HostConfig
    "Binds": _a("bind mounts and named or anonymous volumes (`-v`)"),
    "ContainerIDFile": _i("client-side: the docker CLI writes the file"),
    "LogConfig": _a("json-file, local (kept as json-file) or none; log options are refused"),
    "NetworkMode": _a("default/bridge (the default bridge), a user network, none, host, container:<id>"),
    "PortBindings": _a("published ports: DNAT in berth's chains, host ports reserved"),
    "RestartPolicy": _a("no, always, unless-stopped, on-failure[:N] (app/runtime/restart)"),
    "AutoRemove": _a("removed when it exits (`--rm`)"),
    "VolumeDriver": _a("volume driver: local (others are not found, as an absent plugin)"),
    "VolumesFrom": _a("another container's volumes and binds (`--volumes-from c[:ro|rw]`)"),
    "ConsoleSize": _a("initial terminal size (Tty only)"),
    "Annotations": _r("OCI annotations"),
    "CapAdd": _a("capabilities (ALL allowed)"),
    "CapDrop": _a("capabilities (ALL allowed)"),
    "CgroupnsMode": _a("host or private cgroup namespace (empty: the host's default, as moby)"),
    "Dns": _a("nameservers in /etc/resolv.conf"),
    "DnsOptions": _a("options in /etc/resolv.conf"),
    "DnsSearch": _a("search domains in /etc/resolv.conf"),
    "ExtraHosts": _a("/etc/hosts entries (host-gateway = the default bridge's gateway or --host-gateway-ip)"),
    "GroupAdd": _a("additional groups"),
    "IpcMode": _r("IPC namespace sharing (private is what every container gets)", ("private", "shareable")),
    "Cgroup": _r("cgroup sharing"),
    "Links": _a("legacy links: environment variables and /etc/hosts entries"),
    "OomScoreAdj": _a("the process's OOM score adjustment (-1000..1000)"),
    "PidMode": _a("host or container:<id> pid namespace"),
    "Privileged": _a("all capabilities and devices, no seccomp, writable /sys"),
    "PublishAllPorts": _a("every exposed port on a free ephemeral host port"),
    "ReadonlyRootfs": _a("read-only root file system"),
    "SecurityOpt": _a("seccomp, no-new-privileges, writable-cgroups; apparmor and label refused"),
    "StorageOpt": _r("moby refuses it on overlay2 without xfs pquota", message="--storage-opt is supported only "
                     "for overlay over xfs with 'pquota' mount option"),
    "Tmpfs": _a("tmpfs mounts (`--tmpfs /run:size=…,mode=…`)"),
    "UTSMode": _a("the host's UTS namespace (host) or one of its own"),
    "UsernsMode": _r("user namespaces (the host's is what every container gets)", ("host",)),
    "ShmSize": _a("/dev/shm size (0: 64 MB)"),
    "Sysctls": _r("sysctls"),
    "Runtime": _r("other OCI runtimes", ("runc",)),
    "Isolation": _r("Windows isolation", ("default",)),
    "Mounts": _a("bind, volume and tmpfs mounts (`--mount`); image, npipe and cluster refused"),
    "MaskedPaths": _r("overriding the masked /proc and /sys paths"),
    "ReadonlyPaths": _r("overriding the read-only /proc paths"),
    "Init": _r("an init process (docker-init)"),
}

NETWORKING_CONFIG = {
    "EndpointsConfig": _a("networks to connect at create: aliases, IPv4 address, MAC address, links"),
}

SECTIONS = (("Config", CONFIG), ("HostConfig", HOST_CONFIG), ("NetworkingConfig", NETWORKING_CONFIG))


def is_zero(value) -> bool:
    """Go's zero value as a client sends it for an option nobody set. A map is zero only when empty
    (`{"/data": {}}` asks for a volume); a struct is zero when all of its fields are (`is_zero_struct`)."""
    if value is None or value is False or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == 0
    return False


def is_zero_struct(value) -> bool:
    return is_zero(value) or (isinstance(value, dict) and all(is_zero(v) or is_zero_struct(v) for v in value.values()))


def _zero_endpoints(value) -> bool:
    """EndpointsConfig: the docker CLI sends {"default": {...every field zero...}} for a plain run."""
    return is_zero(value) or (isinstance(value, dict) and all(is_zero_struct(v) for v in value.values()))


_STRUCTS = {"Healthcheck", "LogConfig", "RestartPolicy"}


def refuse_unapplied(config: dict, host_config: dict, networking_config: dict) -> None:
    """400 naming the first refused key that carries a value berth would not apply."""
    for section, table, values in (("Config", CONFIG, config), ("HostConfig", HOST_CONFIG, host_config),
                                   ("NetworkingConfig", NETWORKING_CONFIG, networking_config)):
        for name, value in (values or {}).items():
            key = table.get(name)
            if key is None or key.status != REFUSED or _accepted(value, key.accepts):
                continue
            zero = _zero_endpoints if name == "EndpointsConfig" else is_zero_struct if name in _STRUCTS else is_zero
            if zero(value):
                continue
            raise InvalidParameter(key.message or f"berth does not support {section}.{name} yet")
    log_options = ((host_config or {}).get("LogConfig") or {}).get("Config")
    if not is_zero(log_options):      # the driver is checked by create
        raise InvalidParameter("berth does not support HostConfig.LogConfig.Config yet")


def _accepted(value, accepts: tuple) -> bool:
    for allowed in accepts:
        if isinstance(allowed, dict) and isinstance(value, dict):
            if all(value.get(k) == v or (is_zero(value.get(k)) and is_zero(v)) for k, v in allowed.items()) and \
                    all(is_zero(v) for k, v in value.items() if k not in allowed):
                return True
        elif value == allowed:
            return True
    return False
