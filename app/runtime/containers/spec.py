"""The OCI runtime spec (runc's config.json) for a container: image config + create request → spec.

Pure functions (the rootfs is only read, for /etc/passwd and /etc/group), so every rule here is unit
tested without runc. Defaults follow Docker's (moby oci/defaults.go, daemon/oci_linux.go).
"""
from __future__ import annotations

import ipaddress
import os
import resource

from app.errors import InvalidParameter
from app.runtime.host.cgroups import available_cpuset
from app.runtime.host.seccomp import seccomp_for
from app.runtime.containers.security import DEFAULT_CAPS  # noqa: F401  (Docker's default set, re-exported)
from app.runtime.containers.security import (container_caps, device_cgroup_rules, device_mappings, devices_from_path, host_devices,
                                  parse_security_opt, pid_mode, cgroupns_private, uts_host)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

MIN_MEMORY = 6 * 1024 * 1024  # Docker: "Minimum memory limit allowed is 6MB"
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144   # cgroup v1 cpu.shares bounds (the kernel clamps, runc refuses)
MAX_CONSOLE = 65535                          # a terminal's rows and columns are 16-bit (struct winsize)


def default_mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ]


# ------------------------------------------------------------------------------------------ users

def _read_rootfs_file(rootfs: str, rel: str) -> list[str]:
    """Lines of a file inside the rootfs, refusing symlinks (the image is untrusted input)."""
    path = os.path.join(rootfs, rel.lstrip("/"))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    with os.fdopen(fd, errors="replace") as fh:
        return fh.read().splitlines()


def _entries(lines: list[str]) -> list[list[str]]:
    return [line.split(":") for line in lines if line and not line.startswith("#") and line.count(":") >= 2]


def resolve_user(rootfs: str, user: str) -> tuple[int, int, list[int]]:
    """`name`, `uid`, `name:group`, `uid:gid` → (uid, gid, additional gids), as Docker resolves them."""
    user = (user or "").strip()
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    passwd = _entries(_read_rootfs_file(rootfs, "/etc/passwd"))
    groups = _entries(_read_rootfs_file(rootfs, "/etc/group"))
    entry = None
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if e[2] == name), None)
    else:
        entry = next((e for e in passwd if e[0] == name), None)
        if entry is None:
            raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None and len(entry) > 3 and entry[3].isdigit() else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = next((g for g in groups if g[0] == group), None)
            if match is None:
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
            gid = int(match[2])
    login = entry[0] if entry is not None else None
    extra = sorted({int(g[2]) for g in groups if login and len(g) > 3 and login in g[3].split(",")
                    and g[2].isdigit() and int(g[2]) != gid})
    return uid, gid, extra


def group_add_gids(rootfs: str, group_add: list) -> list[int]:
    """HostConfig.GroupAdd (`--group-add`): numbers as given, names looked up in the image's /etc/group."""
    groups = None
    out = []
    for value in group_add:
        text = str(value).strip()
        if text.isdigit():
            out.append(int(text))
            continue
        if groups is None:
            groups = _entries(_read_rootfs_file(rootfs, "/etc/group"))
        match = next((g for g in groups if g[0] == text and g[2].isdigit()), None)
        if match is None:
            raise InvalidParameter(f"Unable to find group {text}: no matching entries in group file")
        out.append(int(match[2]))
    return out


# ------------------------------------------------------------------------------------------ limits

def resources_from(host_config: dict, ncpu: int | None = None, available=None) -> dict:
    """linux.resources from Docker's HostConfig, with Docker's validation messages. `available(kind)`
    gives the host's cpuset ("cpus"/"mems"; default: the root cpuset's)."""
    ncpu = ncpu or os.cpu_count() or 1
    out: dict = {}
    memory = int(host_config.get("Memory") or 0)
    swap = int(host_config.get("MemorySwap") or 0)
    if memory < 0:
        raise InvalidParameter("invalid memory limit: must be positive")
    if memory:
        if memory < MIN_MEMORY:
            raise InvalidParameter("Minimum memory limit allowed is 6MB")
        out.setdefault("memory", {})["limit"] = memory
        if swap > 0:
            if swap < memory:
                raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
            out["memory"]["swap"] = swap
        elif swap == 0:
            out["memory"]["swap"] = memory * 2      # Docker's default: swap equal to the memory limit
        # swap == -1: unlimited swap, nothing to set
    elif swap > 0:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    reservation = int(host_config.get("MemoryReservation") or 0)
    if reservation:
        if reservation < MIN_MEMORY:
            raise InvalidParameter("Minimum memory reservation allowed is 6MB")
        if memory and memory < reservation:
            raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
        out.setdefault("memory", {})["reservation"] = reservation
    swappiness = host_config.get("MemorySwappiness")
    if swappiness is not None and int(swappiness) != -1:
        if not 0 <= int(swappiness) <= 100:
            raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
        out.setdefault("memory", {})["swappiness"] = int(swappiness)
    if host_config.get("OomKillDisable"):
        out.setdefault("memory", {})["disableOOMKiller"] = True
    shares = int(host_config.get("CpuShares") or 0)
    if shares < 0:
        raise InvalidParameter("invalid CPU shares: must be positive")
    if shares:                                   # runc's texts: it refuses what the kernel would clamp
        if shares < MIN_CPU_SHARES:
            raise InvalidParameter(f"the minimum allowed cpu-shares is {MIN_CPU_SHARES}")
        if shares > MAX_CPU_SHARES:
            raise InvalidParameter(f"the maximum allowed cpu-shares is {MAX_CPU_SHARES}")
        out.setdefault("cpu", {})["shares"] = shares
    nano = int(host_config.get("NanoCpus") or 0)
    if nano:
        if nano < 10_000_000 or nano > ncpu * 1_000_000_000:
            raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs "
                                   "available")
        out.setdefault("cpu", {}).update({"period": 100_000, "quota": nano * 100_000 // 1_000_000_000})
    quota, period = int(host_config.get("CpuQuota") or 0), int(host_config.get("CpuPeriod") or 0)
    if quota or period:
        if nano:
            raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
        if period and not 1000 <= period <= 1_000_000:
            raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                                   "(i.e. 1000000)")
        if quota and quota < 1000:
            raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        out.setdefault("cpu", {}).update({k: v for k, v in (("quota", quota), ("period", period)) if v})
    pids = host_config.get("PidsLimit")
    if pids is not None and int(pids) > 0:
        out["pids"] = {"limit": int(pids)}
    for key, kind, what in (("CpusetCpus", "cpus", "CPUs"), ("CpusetMems", "mems", "memory nodes")):
        value = host_config.get(key) or ""
        if value:
            check_cpuset(value, kind, what, available(kind) if available else available_cpuset(kind))
            out.setdefault("cpu", {})[kind] = value
    return out


_MAX_CPUSET = 1 << 16          # a CPU or node number beyond any machine: refused before any set is built


def parse_cpuset(value: str) -> list[tuple[int, int]]:
    """moby's parsers.ParseUintList ("0-2,5"): inclusive ranges; ValueError for anything else."""
    out = []
    for part in value.split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()) or not (low.isascii() and high.isascii()):
            raise ValueError(value)
        a, b = int(low), int(high) if sep else int(low)
        if a > b or b >= _MAX_CPUSET:
            raise ValueError(value)
        out.append((a, b))
    return out


def check_cpuset(value: str, kind: str, what: str, available: str) -> None:
    """Docker's texts: "Invalid value 0-x for cpuset cpus", "Requested CPUs are not available - …"."""
    try:
        wanted = parse_cpuset(value)
    except ValueError:
        raise InvalidParameter(f"Invalid value {value} for cpuset {kind}") from None
    have = {n for a, b in parse_cpuset(available) for n in range(a, b + 1)} if available else set()
    if any(n not in have for a, b in wanted for n in range(a, min(b, a + len(have)) + 1)):
        raise InvalidParameter(f"Requested {what} are not available - requested {value}, available: {available}")


def clamped_rlimits(requested: list[dict]) -> list[dict]:
    """Docker's --ulimit list as OCI rlimits, clamped to what this process may set (no
    CAP_SYS_RESOURCE here: a higher hard limit makes runc fail, RUNTIME-FACTS Q4)."""
    out = []
    for item in requested or []:
        name = str(item.get("Name", "")).upper()
        resource_id = getattr(resource, f"RLIMIT_{name}", None)
        if resource_id is None:
            raise InvalidParameter(f"invalid ulimit type: {item.get('Name')}")
        # go-units converts to uint64: a negative value (-1) is RLIM_INFINITY
        soft, hard = (_rlim(item.get("Soft")), _rlim(item.get("Hard")))
        if soft > hard:
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        _, host_hard = resource.getrlimit(resource_id)
        if host_hard != resource.RLIM_INFINITY:
            hard, soft = min(hard, host_hard), min(soft, host_hard)
        out.append({"type": f"RLIMIT_{name}", "hard": hard, "soft": soft})
    return out


def _rlim(value) -> int:
    value = int(value or 0)
    return value if value >= 0 else (1 << 64) - 1


def validate_process_settings(host_config: dict) -> None:
    """OomScoreAdj and ShmSize, with moby's texts."""
    score = int(host_config.get("OomScoreAdj") or 0)
    if not -1000 <= score <= 1000:
        raise InvalidParameter(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
    if int(host_config.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")


def validate_console_size(host_config: dict) -> None:
    """ConsoleSize is [height, width] of uint in the API, but a terminal holds 16 bits of each."""
    for value in host_config.get("ConsoleSize") or ():
        if int(value or 0) > MAX_CONSOLE:
            raise InvalidParameter(f"invalid ConsoleSize: a terminal has at most {MAX_CONSOLE} rows and columns")


# ------------------------------------------------------------------------------------------ the spec

def write_etc_files(directory: str, hostname: str, host_config: dict | None = None) -> dict[str, str]:
    """The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, written in `directory` and
    returned as {container path: host file} for bind mounts. HostConfig.ExtraHosts are added to hosts,
    Dns/DnsSearch/DnsOptions make resolv.conf (name resolution of its own comes with networking)."""
    host_config = host_config or {}
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    hosts += "".join(f"{ip}\t{name}\n" for name, ip in extra_hosts(host_config))
    resolv = "".join(f"nameserver {ip}\n" for ip in host_config.get("Dns") or []) or "nameserver 127.0.0.1\n"
    if host_config.get("DnsSearch"):
        resolv += "search " + " ".join(host_config["DnsSearch"]) + "\n"
    if host_config.get("DnsOptions"):
        resolv += "options " + " ".join(host_config["DnsOptions"]) + "\n"
    files = {}
    for name, text in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
        path = os.path.join(directory, name)
        with open(path, "w") as fh:
            fh.write(text)
        files[f"/etc/{name}"] = path
    return files


def extra_hosts(host_config: dict, host_gateway: str = "") -> list[tuple[str, str]]:
    """--add-host entries `name:ip` (or `name=ip`), checked as moby's ValidateExtraHost does. The
    special address host-gateway becomes `host_gateway` (the networks service passes the default
    bridge's gateway or --host-gateway-ip); without one such an entry is only checked, not returned."""
    out = []
    for entry in host_config.get("ExtraHosts") or []:
        sep = "=" if "=" in entry else ":"
        name, found, ip = entry.partition(sep)
        if not found or not name or not ip:
            raise InvalidParameter(f"bad format for add-host: {entry!r}")
        if ip == "host-gateway":
            if host_gateway:
                out.append((name, host_gateway))
            continue
        ip = ip.strip("[]")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidParameter(f"invalid IP address in add-host: {ip!r}") from None
        out.append((name, ip))
    return out


def validate_dns(host_config: dict) -> None:
    for ip in host_config.get("Dns") or []:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidParameter(f"{ip} is not an ip address") from None
    for entry in (host_config.get("DnsSearch") or []) + (host_config.get("DnsOptions") or []):
        if not entry or any(c.isspace() for c in entry):
            raise InvalidParameter(f"invalid DNS search domain or option: {entry!r}")


def merge_env(image_env: list[str] | None, create_env: list[str] | None, hostname: str) -> list[str]:
    """Image env, overridden by the create request's, with PATH and HOSTNAME as Docker adds them."""
    merged: dict[str, str] = {}
    for item in (image_env or []) + (create_env or []):
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidParameter(f"invalid environment variable: {item}")
        merged[key] = value if sep else os.environ.get(key, "")
    env = [f"{k}={v}" for k, v in merged.items()]
    if "PATH" not in merged:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in merged:
        env.insert(1, f"HOSTNAME={hostname}")
    return env


def command_of(image_config: dict, config: dict) -> list[str]:
    """Entrypoint + Cmd: the create request's entrypoint resets the image's Cmd, as in Docker."""
    entrypoint = config.get("Entrypoint")
    cmd = config.get("Cmd")
    if entrypoint is None:
        entrypoint = image_config.get("Entrypoint") or []
        if cmd is None:
            cmd = image_config.get("Cmd") or []
    elif cmd is None:
        cmd = []
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    if isinstance(cmd, str):
        cmd = ["/bin/sh", "-c", cmd]
    args = list(entrypoint) + list(cmd)
    if not args:
        raise InvalidParameter("no command specified")
    return args


def _device_section(host_config: dict) -> tuple[list[dict], list[dict]]:
    """linux.devices and the cgroup device rules: Docker's allow-list (runc adds its own defaults),
    the --device nodes and --device-cgroup-rule, and with --privileged every host device and every
    access (moby's WithDevices)."""
    devices: list[dict] = []
    rules: list[dict] = [{"allow": False, "access": "rwm"}]
    privileged = bool(host_config.get("Privileged"))
    if privileged:
        devices = host_devices()
        rules = [{"allow": True, "access": "rwm"}]
    for host, inside, perms in device_mappings(host_config):
        if privileged and host == inside:
            continue                              # already there with every host device
        found, allowed = devices_from_path(host, inside, "rwm" if privileged else perms)
        devices += found
        if not privileged:
            rules += allowed
    if not privileged:
        rules += device_cgroup_rules(host_config)
    return devices, rules


def build_spec(*, rootfs: str, container_id: str, image_config: dict, config: dict, host_config: dict,
               hostname: str, cgroups_path: str, netns_path: str | None, etc_files: dict[str, str],
               pid_ns_path: str | None = None, daemon_seccomp: str | None = None,
               daemon_no_new_privileges: bool = False, extra_mounts: list[dict] | None = None) -> dict:
    """runc's config.json. `etc_files` maps /etc/hostname, /etc/hosts, /etc/resolv.conf to host files;
    `pid_ns_path` is the pid namespace to join for PidMode container:<id>; `daemon_seccomp` and
    `daemon_no_new_privileges` are the daemon's defaults, which a container's --security-opt overrides."""
    user = config.get("User") or image_config.get("User") or ""
    uid, gid, extra_gids = resolve_user(rootfs, user)
    extra_gids = sorted(set(extra_gids) | set(group_add_gids(rootfs, host_config.get("GroupAdd") or [])))
    privileged = bool(host_config.get("Privileged"))
    caps = container_caps(host_config)
    security = parse_security_opt(host_config.get("SecurityOpt"))
    share_uts = uts_host(host_config)
    namespaces = [{"type": t} for t in ("ipc", "mount")] + ([] if share_uts else [{"type": "uts"}])
    if cgroupns_private(host_config):
        namespaces.append({"type": "cgroup"})
    kind, _ = pid_mode(host_config)
    if kind == "private":
        namespaces.insert(0, {"type": "pid"})
    elif kind == "container":
        if not pid_ns_path:
            raise InvalidParameter("failed to join PID namespace: the container is not running")
        namespaces.insert(0, {"type": "pid", "path": pid_ns_path})
    mode = host_config.get("NetworkMode") or "default"
    if mode != "host":
        namespaces.append({"type": "network", "path": netns_path} if netns_path else {"type": "network"})
    mounts = default_mounts() + [
        {"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
        for dest, src in sorted(etc_files.items())]
    if extra_mounts:           # volumes, binds, tmpfs (app/runtime/volumes/mounts.py): they win a destination
        taken = {m["destination"] for m in extra_mounts}
        mounts = [m for m in mounts if m["destination"] not in taken] + list(extra_mounts)
        spread = {o for m in extra_mounts for o in m["options"]} & {"shared", "rshared", "slave", "rslave"}
        rootfs_propagation = "rshared" if spread & {"shared", "rshared"} else "rslave" if spread else None
    else:
        rootfs_propagation = None
    writable_cgroups = privileged if security.writable_cgroups is None else security.writable_cgroups
    for mount in mounts:
        if (privileged and mount["destination"] == "/sys") or (writable_cgroups and mount["type"] == "cgroup"):
            mount["options"] = [o for o in mount["options"] if o != "ro"]
    shm = int(host_config.get("ShmSize") or 0)
    if shm:
        for mount in mounts:
            if mount["destination"] == "/dev/shm":
                mount["options"] = [o for o in mount["options"] if not o.startswith("size=")] + [f"size={shm}"]
    process_extra = {}
    if host_config.get("OomScoreAdj"):
        process_extra["oomScoreAdj"] = int(host_config["OomScoreAdj"])
    console = host_config.get("ConsoleSize") or [0, 0]
    if config.get("Tty") and len(console) == 2 and console[0] and console[1]:
        process_extra["consoleSize"] = {"height": int(console[0]), "width": int(console[1])}
    devices, device_rules = _device_section(host_config)
    linux_extra = {}
    if security.seccomp:
        seccomp = seccomp_for(security.seccomp, caps, privileged)
    else:                                         # moby: privileged runs unconfined unless it names a profile
        seccomp = None if privileged else seccomp_for(daemon_seccomp, caps, False)
    if seccomp is not None:
        linux_extra["seccomp"] = seccomp
    if devices:
        linux_extra["devices"] = devices
    if config.get("Domainname") and not share_uts:                  # the spec's `domainname` needs runc >= 1.2; the sysctl
        linux_extra["sysctl"] = {"kernel.domainname": config["Domainname"]}   # works on any runc
    return {
        "ociVersion": "1.0.2",
        "process": {
            **process_extra,
            "terminal": bool(config.get("Tty")),
            "user": {"uid": uid, "gid": gid, **({"additionalGids": extra_gids} if extra_gids else {})},
            "args": command_of(image_config, config),
            "env": merge_env(image_config.get("Env"), config.get("Env"), hostname),
            "cwd": config.get("WorkingDir") or image_config.get("WorkingDir") or "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "rlimits": clamped_rlimits(host_config.get("Ulimits")),
            "noNewPrivileges": (daemon_no_new_privileges if security.no_new_privileges is None
                                else security.no_new_privileges),
        },
        "root": {"path": rootfs, "readonly": bool(host_config.get("ReadonlyRootfs"))},
        **({} if share_uts else {"hostname": hostname}),     # the host's UTS namespace: its own name
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": {"devices": device_rules, **resources_from(host_config)},
            **({"rootfsPropagation": rootfs_propagation} if rootfs_propagation else {}),
            "maskedPaths": [] if privileged else list(MASKED_PATHS),
            "readonlyPaths": [] if privileged else list(READONLY_PATHS),
            **linux_extra,
        },
    }
