"""What berth's tests may leave on the host: processes, mounts, network namespaces, links, iptables
chains, cgroups. The suite fails at the end if any is found (tests/conftest.py)."""
from __future__ import annotations

import os
import subprocess
import tempfile

TEST_PREFIX = os.path.join(tempfile.gettempdir(), "berth-test-")


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def leftover_processes() -> list[str]:
    found = []
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if TEST_PREFIX in cmdline or cmdline.startswith("conmon") and "berth" in cmdline:
            found.append(f"process {pid}: {cmdline[:120]}")
    return found


def leftover_mounts() -> list[str]:
    with open("/proc/self/mounts") as fh:
        return [f"mount: {line.split()[1]}" for line in fh if "berth" in line]


def leftover_network() -> list[str]:
    found = [f"netns: {line.split()[0]}" for line in _run(["ip", "netns", "list"]).splitlines()
             if "berth" in line]
    found += [f"link: {line.split(':')[1].strip()}" for line in _run(["ip", "-o", "link", "show"]).splitlines()
              if "berth" in line.lower()]
    for table in ("filter", "nat"):
        found += [f"iptables -t {table}: {line}" for line in _run(["iptables", "-t", table, "-S"]).splitlines()
                  if "berth" in line.lower()]
    return found


def leftover_cgroups() -> list[str]:
    """Test cgroup parents (berth-test-*) must be gone; berth's own parent may stay, but empty."""
    found = []
    root = "/sys/fs/cgroup"
    if os.path.isdir(root):
        for controller in os.listdir(root):
            base = os.path.join(root, controller)
            if not os.path.isdir(base):
                continue
            for name in os.listdir(base):
                path = os.path.join(base, name)
                if name.startswith("berth-test"):
                    found.append(f"cgroup: {path}")
                elif name == "berth" and any(os.path.isdir(os.path.join(path, d)) for d in os.listdir(path)):
                    found.append(f"cgroup: {path} has children")
    return found


def find_leaks() -> list[str]:
    return leftover_processes() + leftover_mounts() + leftover_network() + leftover_cgroups()
