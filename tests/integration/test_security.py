"""Security defaults at least Docker's, in real containers (real daemon, runc, busybox): the default
seccomp profile and --security-opt, --privileged, --cap-add ALL, --pid, --device; TLS on tcp:// and
the socket's group (the second half of this file)."""
from __future__ import annotations

import json
import os

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli


def run(client, cmd: str, **kwargs) -> str:
    return client.containers.run("busybox", ["sh", "-c", cmd], remove=True, **kwargs).decode()


def status_field(client, name: str, **kwargs) -> str:
    return run(client, f"grep '^{name}:' /proc/self/status", **kwargs).split(":", 1)[1].strip()


def daemon_cap_eff() -> str:
    with open("/proc/self/status") as fh:        # the daemon runs as this test's user, with its capabilities
        return next(x for x in fh if x.startswith("CapEff:")).split()[1]


# ------------------------------------------------------------------------------------------ seccomp

def test_default_seccomp_profile_blocks_unshare_and_a_normal_container_works(docker_client, busybox):
    assert status_field(docker_client, "Seccomp") == "2"
    with pytest.raises(docker.errors.ContainerError) as err:
        run(docker_client, "unshare -U -r -m true")
    assert b"Operation not permitted" in err.value.stderr
    assert run(docker_client, "echo ok; ls / >/dev/null; ping -c1 -W1 127.0.0.1 >/dev/null; echo done") == "ok\ndone\n"


def test_seccomp_unconfined_and_no_new_privileges(docker_client, busybox):
    assert status_field(docker_client, "Seccomp", security_opt=["seccomp=unconfined"]) == "0"
    assert run(docker_client, "unshare -U -r -m true && echo inside", security_opt=["seccomp=unconfined"]) == "inside\n"
    assert status_field(docker_client, "NoNewPrivs") == "0"
    assert status_field(docker_client, "NoNewPrivs", security_opt=["no-new-privileges"]) == "1"
    assert status_field(docker_client, "NoNewPrivs", security_opt=["no-new-privileges=true"]) == "1"
    assert status_field(docker_client, "NoNewPrivs", security_opt=["no-new-privileges:false"]) == "0"


def test_cap_add_sys_admin_lifts_the_profiles_sys_admin_rules(docker_client, busybox):
    # moby's conditions read the container's capabilities: with CAP_SYS_ADMIN, unshare is allowed.
    out = run(docker_client, "grep Seccomp: /proc/self/status; unshare -U -r -m true && echo unshared",
              cap_add=["SYS_ADMIN"])
    assert out.split() == ["Seccomp:", "2", "unshared"]


@needs_docker_cli
def test_docker_cli_sends_a_custom_profile_file(daemon, busybox, workdir):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = os.path.join(workdir, "profile.json")
    with open(path, "w") as fh:
        json.dump(profile, fh)
    r = docker_cli(daemon, "run", "--rm", "--security-opt", f"seccomp={path}", "busybox",
                   "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /made || echo refused")
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout and "refused" in r.stdout and "Permission denied" in r.stderr


@pytest.mark.parametrize("opt,message", [
    ("apparmor=docker-default", "AppArmor is not supported on this host, but the profile 'docker-default' was specified"),
    ("label=type:svirt_apache_t", "SELinux is not supported on this host, but the label 'type:svirt_apache_t'"),
    ("bogus=1", 'invalid --security-opt 2: "bogus=1"'),
    ("nonsense", 'invalid --security-opt 1: "nonsense"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("seccomp={not json", "Decoding seccomp profile failed"),
])
def test_security_opts_berth_cannot_apply_are_refused(docker_client, busybox, opt, message):
    if opt.startswith("apparmor") and os.path.isdir("/sys/module/apparmor"):
        pytest.skip("this host has AppArmor")
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], security_opt=[opt])
    assert err.value.status_code == 400
    assert message in err.value.explanation


# ------------------------------------------------------------------------------------------ privileges

def test_privileged_gets_all_capabilities_host_devices_and_no_confinement(docker_client, busybox):
    out = run(docker_client, "grep -E '^(CapEff|Seccomp):' /proc/self/status; test -b /dev/loop0 && echo loop0;"
                             "mkdir -p /m && mount -t tmpfs none /m && echo mounted; grep -q 'sysfs /sys sysfs rw'"
                             " /proc/mounts && echo sys-rw; grep -q ' /proc/sys ' /proc/mounts || echo proc-sys-unmasked",
              privileged=True)
    lines = out.split("\n")
    assert lines[0].split() == ["CapEff:", daemon_cap_eff()]
    assert lines[1].split() == ["Seccomp:", "0"]
    assert lines[2:] == ["loop0", "mounted", "sys-rw", "proc-sys-unmasked", ""]
    # and an unprivileged container has none of that
    out = run(docker_client, "test -e /dev/loop0 || echo no-loop0; mkdir -p /m; mount -t tmpfs none /m 2>/dev/null"
                             " || echo no-mount; grep -q 'sysfs /sys sysfs ro' /proc/mounts && echo sys-ro;"
                             " grep -q ' /proc/sys proc ro' /proc/mounts && echo proc-sys-ro")
    assert out == "no-loop0\nno-mount\nsys-ro\nproc-sys-ro\n"


def test_cap_add_all_and_cap_drop_all(docker_client, busybox):
    assert status_field(docker_client, "CapEff", cap_add=["ALL"]) == daemon_cap_eff()
    assert status_field(docker_client, "CapEff", cap_drop=["ALL"]) == "0000000000000000"
    # drop ALL then add one: just that one (CAP_NET_RAW is bit 13)
    assert status_field(docker_client, "CapEff", cap_drop=["ALL"], cap_add=["NET_RAW"]) == "%016x" % (1 << 13)
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], cap_add=["NOT_A_CAP"])
    assert err.value.status_code == 400 and 'unknown capability: "CAP_NOT_A_CAP"' in err.value.explanation


def test_pid_host_sees_the_daemon(docker_client, daemon, busybox):
    pid = daemon.proc.pid
    assert run(docker_client, f"test -d /proc/{pid} && echo seen || echo hidden", pid_mode="host") == "seen\n"
    assert run(docker_client, f"test -d /proc/{pid} && echo seen || echo hidden") == "hidden\n"


def test_pid_container_joins_another_containers_namespace(docker_client, busybox):
    sleeper = docker_client.containers.run("busybox", ["sleep", "300"], detach=True, name="pid-owner")
    try:
        assert run(docker_client, "cat /proc/1/cmdline | tr '\\0' ' '", pid_mode="container:pid-owner") == "sleep 300 "
    finally:
        sleeper.remove(force=True)
    stopped = docker_client.containers.create("busybox", ["true"], name="stopped-owner")
    joiner = docker_client.containers.create("busybox", ["true"], pid_mode="container:stopped-owner")
    with pytest.raises(docker.errors.APIError) as err:
        joiner.start()
    assert err.value.status_code == 409 and "is not running" in err.value.explanation
    joiner.remove()
    stopped.remove()
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], pid_mode="sideways")
    assert err.value.status_code == 400 and "invalid PID mode: sideways" in err.value.explanation


def test_device_is_created_and_allowed_in_the_cgroup(docker_client, busybox):
    out = run(docker_client, "test -c /dev/mynull && echo hi > /dev/mynull && echo written",
              devices=["/dev/null:/dev/mynull:rwm"])
    assert out == "written\n"
    # read-only in the device cgroup (loop0 is not in runc's default allow-list): open for writing is refused
    out = run(docker_client, "cat /dev/myloop && echo read; (echo x > /dev/myloop) 2>&1; true",
              devices=["/dev/loop0:/dev/myloop:r"])
    assert out.startswith("read\n") and "Operation not permitted" in out
    c = docker_client.containers.create("busybox", ["true"], devices=["/dev/no-such-device:/dev/x:rwm"])
    with pytest.raises(docker.errors.APIError) as err:
        c.start()
    assert 'error gathering device information while adding custom device "/dev/no-such-device"' in err.value.explanation
    c.remove()
