"""Docker's seccomp profile rendered for a container: the caps/arch/kernel conditions as moby applies
them, and --security-opt / capabilities with moby's texts."""
import json

import pytest

from app.errors import InvalidParameter
from app.runtime.host.seccomp import default_profile, kernel_version, parse_profile, render, seccomp_for
from app.runtime.containers.security import DEFAULT_CAPS, available_caps, container_caps, parse_security_opt, pid_mode


def allowed(section: dict) -> set[str]:
    return {n for rule in section["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
            for n in rule["names"]}


def test_default_profile_for_default_caps_on_amd64():
    out = render(default_profile(), DEFAULT_CAPS, arch="amd64", kernel=(6, 1))
    assert out["defaultAction"] == "SCMP_ACT_ERRNO" and out["defaultErrnoRet"] == 1
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(out)
    assert {"read", "write", "arch_prctl"} <= names
    # CAP_SYS_ADMIN rules are left out: unshare, mount, setns stay at the default (EPERM)
    assert not {"unshare", "mount", "setns", "keyctl", "add_key", "bpf", "reboot"} & names
    # clone without namespace flags is allowed by argument; clone3 answers ENOSYS so libc falls back
    clone = [r for r in out["syscalls"] if r["names"] == ["clone"]]
    assert clone and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    clone3 = [r for r in out["syscalls"] if r["names"] == ["clone3"]]
    assert clone3[0]["action"] == "SCMP_ACT_ERRNO" and clone3[0]["errnoRet"] == 38
    # chroot is there because the default set has CAP_SYS_CHROOT; no Docker-only keys reach runc
    assert "chroot" in names
    assert not any(k in rule for rule in out["syscalls"] for k in ("includes", "excludes", "comment", "name"))
    assert "archMap" not in out


def test_capabilities_drive_the_rules():
    with_admin = render(default_profile(), DEFAULT_CAPS + ["CAP_SYS_ADMIN"], arch="amd64", kernel=(6, 1))
    names = allowed(with_admin)
    assert {"unshare", "mount", "setns", "clone", "clone3"} <= names
    # the excludes on CAP_SYS_ADMIN drop the restricted clone/clone3 rules
    assert not [r for r in with_admin["syscalls"] if r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO"]
    without_chroot = render(default_profile(), [c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT"], arch="amd64",
                            kernel=(6, 1))
    assert "chroot" not in allowed(without_chroot)
    assert {"ptrace", "kcmp"} <= allowed(render(default_profile(), ["CAP_SYS_PTRACE"], arch="amd64", kernel=(6, 1)))


def test_arch_and_kernel_conditions():
    on_arm = allowed(render(default_profile(), DEFAULT_CAPS, arch="arm64", kernel=(6, 1)))
    assert "arch_prctl" not in on_arm and "arm_fadvise64_64" in on_arm
    old_kernel = allowed(render(default_profile(), DEFAULT_CAPS, arch="amd64", kernel=(4, 4)))
    assert "ptrace" not in old_kernel           # minKernel 4.8
    assert "ptrace" in allowed(render(default_profile(), DEFAULT_CAPS, arch="amd64", kernel=(4, 8)))
    assert kernel_version("3.12.25-gentoo") == (3, 12) and kernel_version("6.18-rc1") == (6, 18)
    # a kernel without the x32 ABI: x32 is not compiled into the filter (it admits nothing there)
    no_x32 = render(default_profile(), DEFAULT_CAPS, arch="amd64", kernel=(6, 1), skip_x32=True)
    assert no_x32["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]


def test_custom_profiles_and_their_errors():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    out = render(profile, DEFAULT_CAPS, arch="amd64", kernel=(6, 1))
    assert out == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["mkdir"]}]}
    assert render(profile, ["CAP_SYS_ADMIN"], arch="amd64", kernel=(6, 1))["syscalls"] == []
    assert render({}, DEFAULT_CAPS) is None                       # nothing in it: seccomp off
    with pytest.raises(InvalidParameter, match="both 'architectures' and 'archMap'"):
        render({**profile, "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, DEFAULT_CAPS)
    with pytest.raises(InvalidParameter, match="both 'name' and 'names'"):
        render({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "x"}]}, [])
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        parse_profile("{nope")
    with pytest.raises(InvalidParameter, match="invalid kernel version"):
        render({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["a"], "action": "x", "includes": {"minKernel": "4"}}]}, [])


def test_which_profile_a_container_gets():
    assert seccomp_for(None, DEFAULT_CAPS, privileged=False)["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp_for(None, DEFAULT_CAPS, privileged=True) is None
    assert seccomp_for("unconfined", DEFAULT_CAPS, privileged=False) is None
    assert seccomp_for("builtin", DEFAULT_CAPS, privileged=True)["defaultAction"] == "SCMP_ACT_ERRNO"
    custom = json.dumps({"defaultAction": "SCMP_ACT_LOG", "syscalls": []})
    assert seccomp_for(custom, DEFAULT_CAPS, privileged=True) == {"defaultAction": "SCMP_ACT_LOG", "syscalls": []}


def test_capability_rules_as_moby():
    assert container_caps({}) == DEFAULT_CAPS
    assert container_caps({"Privileged": True}) == list(available_caps())
    caps = container_caps({"CapAdd": ["net_admin", "CAP_SYS_ADMIN"], "CapDrop": ["NET_RAW", "cap_chown"]})
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_ADMIN" in caps and "CAP_NET_RAW" not in caps and "CAP_CHOWN" not in caps
    assert container_caps({"CapAdd": ["ALL"], "CapDrop": ["MKNOD"]}) == [c for c in available_caps() if c != "CAP_MKNOD"]
    assert container_caps({"CapDrop": ["ALL"], "CapAdd": ["KILL"]}) == ["CAP_KILL"]
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_BOGUS"'):
        container_caps({"CapAdd": ["bogus"]})


def test_security_opt_parsing():
    opts = parse_security_opt(["no-new-privileges", "seccomp=unconfined", "writable-cgroups=false", "label=disable"])
    assert opts.no_new_privileges and opts.seccomp == "unconfined" and opts.writable_cgroups is False
    assert parse_security_opt(["no-new-privileges=false"]).no_new_privileges is False
    assert parse_security_opt(["seccomp:unconfined"]).seccomp == "unconfined"   # the deprecated separator
    assert parse_security_opt(['seccomp={"a": "b:c"}']).seccomp == '{"a": "b:c"}'
    assert parse_security_opt(["apparmor=unconfined"]).seccomp is None
    for bad, text in (("foo", 'invalid --security-opt 1: "foo"'), ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
                      ("no-new-privileges=yes", 'invalid --security-opt 2: "no-new-privileges=yes"')):
        with pytest.raises(InvalidParameter) as err:
            parse_security_opt([bad])
        assert str(err.value) == text


def test_apparmor_and_selinux_refused_where_not_applied(monkeypatch, tmp_path):
    monkeypatch.setattr("app.runtime.containers.security.APPARMOR_MODULE", str(tmp_path / "none"))
    monkeypatch.setattr("app.runtime.containers.security.SELINUX_FS", str(tmp_path / "none"))
    with pytest.raises(InvalidParameter, match="AppArmor is not supported on this host, but the profile 'x'"):
        parse_security_opt(["apparmor=x"])
    with pytest.raises(InvalidParameter, match="SELinux is not supported on this host"):
        parse_security_opt(["label=type:t"])
    monkeypatch.setattr("app.runtime.containers.security.APPARMOR_MODULE", str(tmp_path))
    with pytest.raises(InvalidParameter, match="berth does not support AppArmor profiles yet"):
        parse_security_opt(["apparmor=x"])


def test_pid_modes():
    assert pid_mode({}) == ("private", None) and pid_mode({"PidMode": "host"}) == ("host", None)
    assert pid_mode({"PidMode": "container:abc"}) == ("container", "abc")
    for bad in ("container:", "hostx", "container"):
        with pytest.raises(InvalidParameter, match=f"invalid PID mode: {bad}"):
            pid_mode({"PidMode": bad})


def test_a_kernel_without_seccomp(monkeypatch):
    monkeypatch.setattr("app.runtime.host.seccomp.kernel_has_seccomp", lambda: False)
    assert seccomp_for(None, DEFAULT_CAPS, privileged=False) is None
    with pytest.raises(InvalidParameter, match="seccomp is not enabled in your kernel"):
        seccomp_for('{"defaultAction": "SCMP_ACT_ALLOW"}', DEFAULT_CAPS, privileged=False)
