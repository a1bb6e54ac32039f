"""Facts about the host for /version and /info, read once (they do not change while we run)."""
from __future__ import annotations

import functools
import os
import platform


@functools.lru_cache(maxsize=1)
def os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as fh:
                for line in fh:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        out[key] = value.strip().strip('"')
            break
        except FileNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=1)
def mem_total() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


@functools.lru_cache(maxsize=1)
def cgroup_version() -> str:
    """"2" on a unified hierarchy, "1" on v1 or hybrid (this machine: v1 controllers + a v2 mount)."""
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def kernel_version() -> str:
    return platform.release()


def go_arch() -> str:
    """Docker reports Go's GOARCH names in /version."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def architecture() -> str:
    return platform.machine()


def operating_system() -> str:
    return os_release().get("PRETTY_NAME", "Linux")


def os_version() -> str:
    return os_release().get("VERSION_ID", "")


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
