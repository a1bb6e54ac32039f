"""A container's security settings from its HostConfig, with moby's rules and texts: capabilities
(CapAdd/CapDrop/Privileged), --security-opt, PidMode and --device.

Values are checked here (create calls `validate_host_config`); ocispec.build_spec applies them.
Device nodes are read from the host at start, as moby does, so a device that appears later works.
"""
from __future__ import annotations

import functools
import json
import os
import re
import stat
from dataclasses import dataclass, field

from app.errors import InvalidParameter

# Every capability the kernel knows of (Linux 5.9+), in bit order: CAP_CHOWN is bit 0.
KNOWN_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

APPARMOR_MODULE = "/sys/module/apparmor"
SELINUX_FS = "/sys/fs/selinux"


@functools.lru_cache(maxsize=1)
def available_caps() -> tuple[str, ...]:
    """The daemon's effective capabilities: what "ALL" and --privileged give (moby: the current
    environment's), since runc cannot hand a container more than the daemon holds."""
    try:
        with open("/proc/self/status") as fh:
            line = next(x for x in fh if x.startswith("CapEff:"))
        bits = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return tuple(KNOWN_CAPS)
    return tuple(name for i, name in enumerate(KNOWN_CAPS) if bits >> i & 1)


def normalize_caps(values) -> list[str]:
    """CapAdd/CapDrop entries upper-cased with the CAP_ prefix; "ALL" kept; unknown ones refused."""
    out = []
    for value in values or []:
        name = str(value).upper()
        if name == "ALL":
            out.append(name)
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in KNOWN_CAPS:
            raise InvalidParameter(f"unknown capability: {json.dumps(name)}")
        if name not in available_caps():
            raise InvalidParameter("capability not supported by your kernel or not available in the current "
                                   f"environment: {json.dumps(name)}")
        out.append(name)
    return out


def container_caps(host_config: dict) -> list[str]:
    """The container's capability set (bounding = effective = permitted), moby's TweakCapabilities."""
    if host_config.get("Privileged"):
        return list(available_caps())
    adds, drops = normalize_caps(host_config.get("CapAdd")), normalize_caps(host_config.get("CapDrop"))
    if "ALL" in adds:
        return [c for c in available_caps() if c not in drops]
    if "ALL" in drops:
        return [c for c in dict.fromkeys(adds)]
    caps = [c for c in DEFAULT_CAPS if c not in drops]
    return caps + [c for c in dict.fromkeys(adds) if c not in caps]


# ------------------------------------------------------------------------------------------ --security-opt

@dataclass
class SecurityOptions:
    no_new_privileges: bool | None = None  # None: the daemon's --no-new-privileges decides
    seccomp: str | None = None            # None: the default; "unconfined"; "builtin"; or a profile's JSON
    writable_cgroups: bool | None = None
    labels: list[str] = field(default_factory=list)


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(text: str, opt: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(opt)}")


def parse_security_opt(values) -> SecurityOptions:
    """HostConfig.SecurityOpt as moby's parseSecurityOpt reads it. What this host cannot apply
    (an AppArmor profile without AppArmor, an SELinux label without SELinux) is refused, not ignored."""
    opts = SecurityOptions()
    for opt in values or []:
        opt = str(opt)
        if opt == "no-new-privileges":
            opts.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            opts.writable_cgroups = True
            continue
        if opt == "disable":
            continue                      # SELinux labelling off: it is off on this host anyway
        if "=" in opt:
            key, value = opt.split("=", 1)
        elif ":" in opt:                  # the separator Docker deprecated, still accepted
            key, value = opt.split(":", 1)
        else:
            raise InvalidParameter(f"invalid --security-opt 1: {json.dumps(opt)}")
        if key == "seccomp":
            opts.seccomp = value
        elif key == "no-new-privileges":
            opts.no_new_privileges = _go_bool(value, opt)
        elif key == "writable-cgroups":
            opts.writable_cgroups = _go_bool(value, opt)
        elif key == "apparmor":
            if value != "unconfined" and not os.path.isdir(APPARMOR_MODULE):
                raise InvalidParameter(f"AppArmor is not supported on this host, but the profile '{value}' "
                                       "was specified")
            if value != "unconfined":
                raise InvalidParameter(f"berth does not support AppArmor profiles yet: '{value}'")
        elif key == "label":
            if value != "disable" and not os.path.isdir(SELINUX_FS):
                raise InvalidParameter(f"SELinux is not supported on this host, but the label '{value}' "
                                       "was specified")
            if value != "disable":
                raise InvalidParameter(f"berth does not support SELinux labels yet: '{value}'")
            opts.labels.append(value)
        else:
            raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(opt)}")
    return opts


# ------------------------------------------------------------------------------------------ PidMode

def pid_mode(host_config: dict) -> tuple[str, str | None]:
    """("private", None), ("host", None) or ("container", name-or-id); moby's texts for others."""
    mode = host_config.get("PidMode") or ""
    if mode == "":
        return "private", None
    if mode == "host":
        return "host", None
    kind, sep, name = mode.partition(":")
    if kind == "container" and sep and name:
        return "container", name
    raise InvalidParameter(f"invalid PID mode: {mode}")


# ------------------------------------------------------------------------------------------ devices

def _device(path: str, path_in_container: str) -> dict | None:
    """The OCI device entry of a host device node, or None when `path` is not one."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return {"path": path_in_container, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def device_mappings(host_config: dict) -> list[tuple[str, str, str]]:
    """HostConfig.Devices as (path on host, path in container, cgroup permissions), checked."""
    out = []
    for item in host_config.get("Devices") or []:
        if not isinstance(item, dict):
            raise InvalidParameter(f"invalid device specification: {item}")
        host = str(item.get("PathOnHost") or "")
        inside = str(item.get("PathInContainer") or "") or host
        perms = str(item.get("CgroupPermissions") or "") or "rwm"
        if not host:
            raise InvalidParameter("invalid device specification: PathOnHost is empty")
        if not inside.startswith("/"):
            raise InvalidParameter(f"invalid device specification: {inside} is not an absolute path")
        if not set(perms) <= set("rwm"):
            raise InvalidParameter(f"invalid device mode: {perms}")
        out.append((host, inside, perms))
    return out


def devices_from_path(host: str, inside: str, perms: str) -> tuple[list[dict], list[dict]]:
    """A device node, or every device node under a directory, as (OCI devices, cgroup rules)."""
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    devices = []
    single = _device(resolved, inside)
    if single is not None:
        devices.append(single)
    elif os.path.isdir(resolved):
        for root, _dirs, files in os.walk(resolved):
            for name in sorted(files):
                path = os.path.join(root, name)
                entry = _device(path, inside + path[len(resolved):])
                if entry is not None:
                    devices.append(entry)
    if not devices:
        reason = "not a device node" if os.path.exists(resolved) else "no such file or directory"
        raise InvalidParameter(f"error gathering device information while adding custom device {json.dumps(host)}: "
                               f"{reason}")
    rules = [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"], "access": perms}
             for d in devices]
    return devices, rules


_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")


def device_cgroup_rules(host_config: dict) -> list[dict]:
    """HostConfig.DeviceCgroupRules (`--device-cgroup-rule 'c 1:3 rwm'`) as allow rules, `*` = any (-1)."""
    out = []
    for text in host_config.get("DeviceCgroupRules") or []:
        match = _CGROUP_RULE.fullmatch(str(text))
        if not match:
            raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
        kind, major, minor, access = match.groups()
        out.append({"allow": True, "type": kind, "major": -1 if major == "*" else int(major),
                    "minor": -1 if minor == "*" else int(minor), "access": access})
    return out


_HOST_DEV_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices() -> list[dict]:
    """Every device node under the host's /dev, for --privileged (as containerd's HostDevices)."""
    out = []
    for root, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if not (root == "/dev" and d in _HOST_DEV_SKIP_DIRS)]
        for name in sorted(files):
            if root == "/dev" and name == "console":
                continue
            entry = _device(os.path.join(root, name), os.path.join(root, name))
            if entry is not None:
                out.append(entry)
    return out


def uts_host(host_config: dict) -> bool:
    """UTSMode: "" (a namespace of its own) or "host"; moby's text for anything else."""
    mode = host_config.get("UTSMode") or ""
    if mode not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {mode}")
    return mode == "host"


def cgroupns_private(host_config: dict) -> bool:
    """CgroupnsMode: "private" (a cgroup namespace of its own) or "host"; empty is filled in at
    create with the host's default (moby: "host" on cgroup v1, "private" on a unified host)."""
    mode = host_config.get("CgroupnsMode") or ""
    if mode not in ("", "host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {mode}")
    return mode == "private"


def validate_host_config(host_config: dict) -> None:
    """What create checks of the security settings (the device nodes themselves are read at start)."""
    container_caps(host_config)
    uts_host(host_config)
    cgroupns_private(host_config)
    opts = parse_security_opt(host_config.get("SecurityOpt"))
    if opts.seccomp not in (None, "", "unconfined", "builtin"):
        from app.runtime.host.seccomp import parse_profile, render
        render(parse_profile(opts.seccomp), container_caps(host_config))
    pid_mode(host_config)
    device_mappings(host_config)
    device_cgroup_rules(host_config)
