import os

import pytest

from app.errors import InvalidParameter
from app.runtime.containers.spec import (DEFAULT_CAPS, DEFAULT_PATH, build_spec, clamped_rlimits, command_of, merge_env,
                                 resolve_user, resources_from)


@pytest.fixture
def rootfs(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
                                "app:x:1000:1000::/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n")
    return str(tmp_path)


@pytest.mark.parametrize("user,expected", [
    ("", (0, 0, [])), ("root", (0, 0, [])), ("nobody", (65534, 65534, [])),
    ("app", (1000, 1000, [10, 29])), ("1000", (1000, 1000, [10, 29])), ("4242", (4242, 0, [])),
    ("app:wheel", (1000, 10, [29])), ("nobody:5", (65534, 5, [])), ("4242:4343", (4242, 4343, [])),
])
def test_resolve_user(rootfs, user, expected):
    assert resolve_user(rootfs, user) == expected


def test_resolve_user_errors_and_symlinked_passwd(rootfs, tmp_path):
    with pytest.raises(InvalidParameter, match="unable to find user ghost: no matching entries in passwd file"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(InvalidParameter, match="unable to find group nope"):
        resolve_user(rootfs, "app:nope")
    os.unlink(os.path.join(rootfs, "etc", "passwd"))
    os.symlink("/etc/passwd", os.path.join(rootfs, "etc", "passwd"))   # must not read the host's file
    with pytest.raises(InvalidParameter):
        resolve_user(rootfs, "root")


def test_command_rules():
    image = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    assert command_of(image, {}) == ["/entry", "default"]
    assert command_of(image, {"Cmd": ["x"]}) == ["/entry", "x"]
    assert command_of(image, {"Entrypoint": ["/other"]}) == ["/other"]          # resets the image's Cmd
    assert command_of({"Cmd": ["/bin/sh"]}, {"Cmd": ["echo", "hi"]}) == ["echo", "hi"]
    with pytest.raises(InvalidParameter, match="no command specified"):
        command_of({}, {})


def test_env_merge(monkeypatch):
    monkeypatch.setenv("FROM_HOST", "h")
    env = merge_env(["A=1", "B=2"], ["B=3", "C=", "FROM_HOST"], "box")
    assert env == [f"PATH={DEFAULT_PATH}", "HOSTNAME=box", "A=1", "B=3", "C=", "FROM_HOST=h"]
    assert merge_env(["PATH=/x"], [], "h")[0] == "PATH=/x"
    with pytest.raises(InvalidParameter):
        merge_env([], ["=bad"], "h")


def test_resources_and_docker_messages():
    r = resources_from({"Memory": 32 << 20, "MemorySwap": 64 << 20, "CpuShares": 512, "NanoCpus": 500_000_000,
                        "PidsLimit": 20}, ncpu=2)
    assert r == {"memory": {"limit": 32 << 20, "swap": 64 << 20}, "cpu": {"shares": 512, "period": 100000,
                 "quota": 50000}, "pids": {"limit": 20}}
    assert resources_from({"Memory": 32 << 20})["memory"]["swap"] == 64 << 20
    assert "swap" not in resources_from({"Memory": 32 << 20, "MemorySwap": -1})["memory"]
    assert resources_from({}) == {}
    for hc, message in (({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
                        ({"Memory": 32 << 20, "MemorySwap": 16 << 20}, "should be larger than memory limit"),
                        ({"MemorySwap": 16 << 20}, "always set the Memory limit"),
                        ({"NanoCpus": 3_000_000_000}, "Range of CPUs is from 0.01 to 2.00"),
                        ({"Memory": -1}, "must be positive"),
                        ({"NanoCpus": 10**9, "CpuQuota": 5000}, "Conflicting options")):
        with pytest.raises(InvalidParameter, match=message):
            resources_from(hc, ncpu=2)


def test_rlimits_clamped_to_host():
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    [r] = clamped_rlimits([{"Name": "nofile", "Soft": 1 << 30, "Hard": 1 << 30}])
    if hard != resource.RLIM_INFINITY:
        assert r["hard"] == hard and r["soft"] <= hard
    with pytest.raises(InvalidParameter, match="invalid ulimit type"):
        clamped_rlimits([{"Name": "bogus", "Soft": 1, "Hard": 1}])
    with pytest.raises(InvalidParameter, match="soft limit must be less than or equal"):
        clamped_rlimits([{"Name": "nproc", "Soft": 2, "Hard": 1}])


def test_build_spec(rootfs):
    spec = build_spec(rootfs=rootfs, container_id="c" * 64, image_config={"Cmd": ["/bin/sh"], "Env": ["A=1"],
                      "User": "app", "WorkingDir": "/srv"}, config={"Cmd": ["true"], "Tty": True},
                      host_config={"CapAdd": ["SYS_ADMIN"], "CapDrop": ["NET_RAW"], "Memory": 64 << 20},
                      hostname="cccccccccccc", cgroups_path="/berth/" + "c" * 64, netns_path=None,
                      etc_files={"/etc/hosts": "/x/hosts"})
    p = spec["process"]
    assert p["args"] == ["true"] and p["terminal"] is True and p["cwd"] == "/srv"
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert "CAP_SYS_ADMIN" in p["capabilities"]["bounding"] and "CAP_NET_RAW" not in p["capabilities"]["effective"]
    assert set(DEFAULT_CAPS) - {"CAP_NET_RAW"} <= set(p["capabilities"]["permitted"])
    assert {n["type"] for n in spec["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "network"}
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert {"destination": "/etc/hosts", "type": "bind", "source": "/x/hosts", "options": ["rbind", "rprivate"]} \
        in spec["mounts"]
    assert spec["root"] == {"path": rootfs, "readonly": False} and spec["hostname"] == "cccccccccccc"
    host = build_spec(rootfs=rootfs, container_id="d" * 64, image_config={"Cmd": ["sh"]}, config={},
                      host_config={"NetworkMode": "host"}, hostname="h", cgroups_path="/b/d", netns_path=None,
                      etc_files={})
    assert "network" not in {n["type"] for n in host["linux"]["namespaces"]}


def _spec(rootfs, host_config, **extra):
    return build_spec(rootfs=rootfs, container_id="e" * 64, image_config={"Cmd": ["sh"]}, config={},
                      host_config=host_config, hostname="h", cgroups_path="/b/e", netns_path=None, etc_files={},
                      **extra)


def test_default_spec_is_confined_like_dockers(rootfs):
    spec = _spec(rootfs, {})
    seccomp = spec["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["syscalls"]
    assert not any("unshare" in r["names"] for r in seccomp["syscalls"])      # no CAP_SYS_ADMIN
    assert spec["process"]["noNewPrivileges"] is False and spec["linux"]["maskedPaths"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert "devices" not in spec["linux"]
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]
    nnp = _spec(rootfs, {"SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]})
    assert nnp["process"]["noNewPrivileges"] is True and "seccomp" not in nnp["linux"]


def test_privileged_spec(rootfs):
    from app.runtime.containers.security import available_caps
    spec = _spec(rootfs, {"Privileged": True, "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/null",
                                                           "CgroupPermissions": "r"}]})
    assert spec["process"]["capabilities"]["effective"] == list(available_caps())
    assert "seccomp" not in spec["linux"] and spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" and d["type"] == "c" for d in spec["linux"]["devices"])
    for dest in ("/sys", "/sys/fs/cgroup"):
        assert "ro" not in next(m for m in spec["mounts"] if m["destination"] == dest)["options"]


def test_devices_and_pid_modes(rootfs):
    spec = _spec(rootfs, {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                       "CgroupPermissions": "rw"}]})
    assert spec["linux"]["devices"] == [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                         "fileMode": os.stat("/dev/null").st_mode & 0o7777, "uid": 0, "gid": 0}]
    assert spec["linux"]["resources"]["devices"][1:] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    with pytest.raises(InvalidParameter, match='adding custom device "/nope": no such file or directory'):
        _spec(rootfs, {"Devices": [{"PathOnHost": "/nope", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]})
    with pytest.raises(InvalidParameter, match="invalid device mode: rwx"):
        _spec(rootfs, {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwx"}]})
    rules = _spec(rootfs, {"DeviceCgroupRules": ["c 1:* rw", "a *:* m"]})["linux"]["resources"]["devices"]
    assert rules[1:] == [{"allow": True, "type": "c", "major": 1, "minor": -1, "access": "rw"},
                         {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "m"}]
    assert "pid" not in {n["type"] for n in _spec(rootfs, {"PidMode": "host"})["linux"]["namespaces"]}
    joined = _spec(rootfs, {"PidMode": "container:abc"}, pid_ns_path="/proc/42/ns/pid")
    assert {"type": "pid", "path": "/proc/42/ns/pid"} in joined["linux"]["namespaces"]
