"""What berth's tests may leave on the host: processes, mounts, network namespaces, links, iptables
chains, cgroups. The suite fails at the end if any is found (tests/conftest.py)."""
from __future__ import annotations

import fcntl
import os
import re
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


NET_SLOT_DIR = "/run/berth-test-net"         # tests/integration/conftest.py NetSlot
_SLOT_NAME = re.compile(r"berth-t([0-9a-f]{3})\b")


def _slot_in_use(n: int) -> bool:
    """A test daemon's network slot still held (by a concurrent suite: ours are released by now)."""
    path = os.path.join(NET_SLOT_DIR, str(n))
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _slot_of_address(addr: str) -> int | None:
    """User networks of slot n get subnets in 10.(210 + n // 16).((n % 16) * 16)/20."""
    parts = addr.split("/")[0].split(".")
    if len(parts) == 4 and parts[0] == "10" and 210 <= int(parts[1]) < 242:
        return (int(parts[1]) - 210) * 16 + int(parts[2]) // 16
    return None


def _others(text: str, addresses: dict[str, str]) -> bool:
    """The object belongs to another live suite's test daemon."""
    m = _SLOT_NAME.search(text)
    if m:
        return _slot_in_use(int(m.group(1), 16))
    for name, addr in addresses.items():
        if name in text.split(":")[1 if ":" in text else 0] or name in text.split():
            slot = _slot_of_address(addr)
            if slot is not None:
                return _slot_in_use(slot)
    return False


def leftover_network() -> list[str]:
    """Network namespaces, links (bridges, veths) and iptables chains or rules with berth in the name —
    except those of test daemons of another suite running concurrently on this machine."""
    addresses = {}
    for line in _run(["ip", "-o", "-4", "addr", "show"]).splitlines():
        words = line.split()
        if len(words) > 3:
            addresses[words[1]] = words[3]
    found = [f"netns: {line.split()[0]}" for line in _run(["ip", "netns", "list"]).splitlines()
             if "berth" in line]
    for line in _run(["ip", "-o", "link", "show"]).splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if "berth" not in line.lower():
            continue
        master = re.search(r"master (\S+)", line)
        if _others(name if not master else master.group(1), addresses) or \
                (name in addresses and _slot_of_address(addresses[name]) is not None
                 and _slot_in_use(_slot_of_address(addresses[name]))):
            continue
        found.append(f"link: {name}")
    for table in ("filter", "nat"):
        for line in _run(["iptables", "-w", "-t", table, "-S"]).splitlines():
            if "berth" in line.lower() and not _others(line, {}):
                found.append(f"iptables -t {table}: {line}")
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
