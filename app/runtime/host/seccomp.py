"""Seccomp profiles in Docker's format, rendered for one container into the OCI spec's `linux.seccomp`.

runc compiles `linux.seccomp` into a BPF filter (Debian's runc is built with libseccomp), so the
daemon's only job is to turn a Docker profile into that section. A Docker profile is the OCI section
plus conditions: `archMap` (the architectures of this machine and its sub-architectures) and, per
syscall rule, `includes`/`excludes` on the host's architecture, its kernel version (`minKernel`)
and the container's capabilities. A rule whose conditions do not hold is left out, which makes the
default action (EPERM) apply: `unshare`, `mount` or `keyctl` are allowed only to a container that
has CAP_SYS_ADMIN.

seccomp_default.json is Docker's default profile as data (moby's profiles/seccomp/default.json);
the code here is berth's own.
"""
from __future__ import annotations

import errno
import functools
import json
import logging
import os
import re

from app.errors import InvalidParameter

log = logging.getLogger("berth")

DEFAULT_PROFILE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")

# uname's machine → the architecture names the profile's `arches` conditions use
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
    "riscv64": "riscv64", "loongarch64": "loongarch64", "mips64": "mips64",
}
# those names → the libseccomp architecture that `archMap` entries are keyed by
_NATIVE_TO_SCMP = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM", "arm64": "SCMP_ARCH_AARCH64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64", "mips64": "SCMP_ARCH_MIPS64", "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64", "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X",
}
# keys of a syscall rule that are Docker's and not the OCI spec's
_DOCKER_ONLY_RULE_KEYS = ("name", "comment", "includes", "excludes")


def host_arch() -> str:
    machine = os.uname().machine
    return _MACHINE_TO_NATIVE.get(machine, machine)


@functools.lru_cache(maxsize=1)
def kernel_has_seccomp() -> bool:
    """The kernel filters system calls (CONFIG_SECCOMP_FILTER): /proc/self/status has a Seccomp line."""
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def kernel_runs_x32() -> bool:
    """Whether this kernel has the x32 ABI (most distributions build without it): an x32 getpid
    answers ENOSYS when it does not."""
    if os.uname().machine != "x86_64":
        return False
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(0x40000000 | 39) != -1 or ctypes.get_errno() != errno.ENOSYS


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(kernel, major) of a release string such as 6.18.44-fc or 3.12-1-amd64."""
    match = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    if not match:
        raise InvalidParameter(f"failed to parse kernel version {release!r}")
    return int(match.group(1)), int(match.group(2))


def _parse_min_kernel(value) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    parts = str(value).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts == ["0", "0"]:
        raise InvalidParameter(f'invalid kernel version: "{value}", expected "<kernel>.<major>"')
    return int(parts[0]), int(parts[1])


@functools.lru_cache(maxsize=1)
def default_profile() -> dict:
    with open(DEFAULT_PROFILE_PATH) as fh:
        return json.load(fh)


def parse_profile(text: str) -> dict:
    """A profile sent in `--security-opt seccomp=<json>` (the docker CLI sends the file's content)."""
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise InvalidParameter(f"Decoding seccomp profile failed: {err}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: the profile is not a JSON object")
    return profile


def _condition_holds(rule_filter: dict, arch: str, caps: set[str], kernel: tuple[int, int], include: bool) -> bool:
    """For `includes`: every condition is met. For `excludes`: any condition is met."""
    arches = rule_filter.get("arches") or []
    needed = rule_filter.get("caps") or []
    min_kernel = _parse_min_kernel(rule_filter.get("minKernel"))
    if include:
        return ((not arches or arch in arches) and all(c in caps for c in needed)
                and (min_kernel is None or kernel >= min_kernel))
    return ((bool(arches) and arch in arches) or any(c in caps for c in needed)
            or (min_kernel is not None and kernel >= min_kernel))


def render(profile: dict, caps, *, arch: str | None = None, kernel: tuple[int, int] | None = None,
           skip_x32: bool | None = None) -> dict | None:
    """The OCI `linux.seccomp` for a container with capability set `caps` (names like CAP_SYS_ADMIN),
    or None when the profile disables seccomp (no default action and no rules)."""
    if skip_x32 is None:
        skip_x32 = arch is None and not kernel_runs_x32()
    arch = arch or host_arch()
    kernel = kernel or kernel_version()
    caps = set(caps)
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                               "use either 'architectures' or 'archMap'")
    out = {k: v for k, v in profile.items() if k not in ("archMap", "syscalls")}
    scmp_arch = _NATIVE_TO_SCMP.get(arch)
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == scmp_arch:
            # A sub-architecture the kernel cannot run costs runc ~8 ms per start to compile and
            # admits nothing, so x32 is left out where the kernel lacks it (a process using it is
            # then stopped by the filter instead of getting ENOSYS from the kernel).
            subs = [a for a in entry.get("subArchitectures") or [] if a != "SCMP_ARCH_X32" or not skip_x32]
            out["architectures"] = [scmp_arch] + subs
            break
    rules = []
    for rule in profile.get("syscalls") or []:
        names = rule.get("names") or []
        if rule.get("name"):
            if names:
                raise InvalidParameter("both 'name' and 'names' are specified in the seccomp profile, "
                                       "use either 'name' or 'names'")
            names = [rule["name"]]
        if rule.get("excludes") and _condition_holds(rule["excludes"], arch, caps, kernel, include=False):
            continue
        if rule.get("includes") and not _condition_holds(rule["includes"], arch, caps, kernel, include=True):
            continue
        oci_rule = {k: v for k, v in rule.items() if k not in _DOCKER_ONLY_RULE_KEYS}
        oci_rule["names"] = list(names)
        rules.append(oci_rule)
    out["syscalls"] = rules
    return out


def seccomp_for(profile_option: str | None, caps, privileged: bool) -> dict | None:
    """linux.seccomp for a container, as moby chooses it: `unconfined` → none; privileged → none
    unless a profile was given; a given profile (JSON text) or `builtin` or nothing → that profile
    or Docker's default, rendered for the container's capabilities."""
    if profile_option == "unconfined":
        return None
    if not kernel_has_seccomp():                  # moby: the default is dropped with a warning, a profile refused
        if profile_option not in (None, "", "builtin"):
            raise InvalidParameter("seccomp is not enabled in your kernel, cannot run a custom seccomp profile")
        log.warning("seccomp is not enabled in your kernel, running container without default profile")
        return None
    if profile_option == "builtin":
        return render(default_profile(), caps)
    if not profile_option:
        return None if privileged else render(default_profile(), caps)
    return render(parse_profile(profile_option), caps)
