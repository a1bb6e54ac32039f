"""Volumes under runc: the chapter's data-management walkthrough through the docker CLI, docker-py and
ours — `-v /data` and the host-side file seen inside, copy-in from the image (VOLUME too), named
volumes and the volume command with the local driver's options, bind mounts hiding content and
their propagation, tmpfs and --read-only, --volumes-from a stopped container and the data-container
pattern, the deletion rules, events, ps/df, cp into a volume, and recovery after kill -9."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import time

import docker
import docker.types
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli, until

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


def ok(result) -> str:
    assert result.returncode == 0, f"rc {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def volume_dirs(daemon) -> list[str]:
    root = os.path.join(daemon.data_root, "volumes")
    return sorted(n for n in os.listdir(root) if not n.startswith("."))


def volume_events(daemon, since: float) -> list[tuple]:
    out = ok(docker_cli(daemon, "events", "--since", str(since), "--until", str(time.time() + 0.5),
                        "--filter", "type=volume", "--format", "{{json .}}"))
    return [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in map(json.loads, out.splitlines())]


@pytest.fixture
def content_image(daemon, busybox_tar, tmp_path):
    """busybox plus /srv with an owned file, a private dir, a symlink and an xattr, and VOLUME /srv."""
    path = tmp_path / "img.tar"
    shutil.copy(busybox_tar, path)
    with tarfile.open(path, "a", format=tarfile.PAX_FORMAT) as tf:
        def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="", pax=None):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.linkname = kind, mode, uid, gid, link
            ti.size = len(data)
            if pax:
                ti.pax_headers = pax
            tf.addfile(ti, io.BytesIO(data) if data else None)
        add("srv", tarfile.DIRTYPE, mode=0o750, uid=33, gid=33)
        add("srv/owned", data=b"owned\n", mode=0o600, uid=1000, gid=1001)
        add("srv/private", tarfile.DIRTYPE, mode=0o700, uid=123, gid=456)
        add("srv/private/x", data=b"x\n")
        add("srv/link", tarfile.SYMTYPE, link="owned")
        add("srv/tagged", data=b"t\n", pax={"SCHILY.xattr.user.berth": "yes"})
        add("srv/private/hard", tarfile.LNKTYPE, link="srv/owned")
        add("srv/escape", tarfile.SYMTYPE, link="/etc")              # copied as a link, never followed
    ok(daemon.cli("import", "-c", "VOLUME /srv", str(path), "content:1"))
    return "content:1"


# ------------------------------------------------------------------------------------------ 1 anonymous

@needs_docker_cli
def test_anonymous_volume_walkthrough_docker_cli(daemon, busybox):
    since = time.time()
    cid = ok(docker_cli(daemon, "run", "-d", "--name", "web", "-v", "/data", "busybox", "sleep", "60")).strip()
    mounts = ok(docker_cli(daemon, "inspect", "-f", "{{.Mounts}}", "web")).strip()
    name = ok(docker_cli(daemon, "inspect", "-f", "{{(index .Mounts 0).Name}}", "web")).strip()
    source = os.path.join(daemon.data_root, "volumes", name, "_data")
    assert len(name) == 64 and mounts == f"[{{volume {name} {source} /data local  true }}]"
    with open(os.path.join(source, "from-host"), "w") as fh:      # the host side, seen inside at once
        fh.write("hello from the host\n")
    assert ok(docker_cli(daemon, "exec", "web", "cat", "/data/from-host")) == "hello from the host\n"
    ok(docker_cli(daemon, "exec", "web", "sh", "-c", "echo inside > /data/from-ctr"))
    assert open(os.path.join(source, "from-ctr")).read() == "inside\n"
    assert ok(docker_cli(daemon, "volume", "ls", "-q")).split() == [name]
    ok(docker_cli(daemon, "rm", "-f", "web"))
    assert ok(docker_cli(daemon, "volume", "ls", "-q")).split() == [name]      # rm without -v keeps it
    events = volume_events(daemon, since)
    assert [(a, n) for a, n, _ in events] == [("create", name), ("mount", name), ("unmount", name)]
    assert events[1][2] == {"container": cid, "destination": "/data", "driver": "local", "propagation": "",
                            "read/write": "true"}
    ok(docker_cli(daemon, "volume", "rm", name))
    assert volume_dirs(daemon) == []


def test_copy_in_keeps_owners_modes_links_xattrs(daemon, content_image):
    out = ok(daemon.cli("run", "--name", "cc", "-v", "/srv", content_image, "sh", "-c",
                        "ls -lan /srv /srv/private | sed 's/  */ /g'; cat /srv/link"))
    assert "owned\n" in out
    name = json.loads(ok(daemon.cli("inspect", "cc")))[0]["Mounts"][0]["Name"]
    data = os.path.join(daemon.data_root, "volumes", name, "_data")
    st = os.stat(data)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, 33, 33)       # the directory's own too
    st = os.stat(os.path.join(data, "owned"))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, 1000, 1001)
    st = os.stat(os.path.join(data, "private"))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o700, 123, 456)
    assert os.readlink(os.path.join(data, "link")) == "owned"
    assert os.getxattr(os.path.join(data, "tagged"), "user.berth") == b"yes"
    assert os.stat(os.path.join(data, "private", "hard")).st_ino == os.stat(os.path.join(data, "owned")).st_ino
    assert os.readlink(os.path.join(data, "escape")) == "/etc"
    assert sorted(os.listdir(data)) == ["escape", "link", "owned", "private", "tagged"]
    ok(daemon.cli("rm", "-v", "cc"))
    assert volume_dirs(daemon) == []


def test_nocopy_and_a_used_volume_is_not_refilled(daemon, content_image):
    ok(daemon.cli("run", "--rm", "-v", "nc:/srv:nocopy", content_image, "sh", "-c", "test -z \"$(ls /srv)\""))
    ok(daemon.cli("run", "--rm", "--mount", "type=volume,src=nc2,dst=/srv,volume-nocopy", content_image,
                  "sh", "-c", "test -z \"$(ls /srv)\""))
    ok(daemon.cli("run", "--rm", "-v", "full:/srv", content_image, "sh", "-c", "rm /srv/owned; touch /srv/mine"))
    out = ok(daemon.cli("run", "--rm", "-v", "full:/srv", content_image, "ls", "/srv"))
    assert "owned" not in out.split() and "mine" in out.split()                # not empty: no copy again
    ok(daemon.cli("volume", "rm", "nc", "nc2", "full"))


# ------------------------------------------------------------------------------------------ 2 VOLUME

def test_volume_in_image_config_import_and_commit(daemon, busybox, content_image):
    out = ok(daemon.cli("run", "--name", "v1", content_image, "cat", "/srv/owned"))
    assert out == "owned\n"
    (mount,) = json.loads(ok(daemon.cli("inspect", "v1")))[0]["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/srv" and len(mount["Name"]) == 64
    assert ok(daemon.cli("inspect", "-f", "{{.Mounts}}", "v1")) == \
        f"[{{volume {mount['Name']} {mount['Source']} /srv local  true }}]\n"      # Docker's struct form
    assert json.loads(ok(daemon.cli("inspect", mount["Name"])))[0]["Driver"] == "local"   # a volume too
    ok(daemon.cli("run", "--name", "base", "busybox", "sh", "-c", "mkdir /cfg; echo v=1 > /cfg/app.conf"))
    ok(daemon.cli("commit", "-c", "VOLUME /cfg", "base", "withvol:1"))
    out = ok(daemon.cli("run", "--name", "v2", "withvol:1", "cat", "/cfg/app.conf"))
    assert out == "v=1\n"
    assert json.loads(ok(daemon.cli("inspect", "v2")))[0]["Mounts"][0]["Destination"] == "/cfg"
    ok(daemon.cli("rm", "-v", "v1", "v2", "base"))
    assert volume_dirs(daemon) == []


# ------------------------------------------------------------------------------------------ 3 named

def test_named_volumes_and_volume_command_our_cli(daemon, busybox):
    ok(daemon.cli("volume", "create", "--label", "demo=1", "data1"))
    ok(daemon.cli("volume", "create", "--name", "data2", "-d", "local"))
    ok(daemon.cli("run", "--rm", "-v", "data1:/d", "busybox", "sh", "-c", "echo kept > /d/f"))
    assert ok(daemon.cli("run", "--rm", "-v", "data1:/d:ro", "busybox", "cat", "/d/f")) == "kept\n"
    r = daemon.cli("run", "--rm", "-v", "data1:/d:ro", "busybox", "touch", "/d/g")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert ok(daemon.cli("volume", "ls")).splitlines() == ["DRIVER    VOLUME NAME", "local     data1",
                                                             "local     data2"]
    assert ok(daemon.cli("volume", "ls", "-q", "-f", "label=demo=1")).split() == ["data1"]
    assert ok(daemon.cli("volume", "ls", "-f", "name=2", "--format", "{{.Name}} {{.Driver}}")) == "data2 local\n"
    v = json.loads(ok(daemon.cli("volume", "inspect", "data1")))[0]
    assert v["Labels"] == {"demo": "1"} and v["Mountpoint"].endswith("/volumes/data1/_data")
    assert ok(daemon.cli("volume", "inspect", "-f", "{{.Driver}}", "data2")) == "local\n"
    r = daemon.cli("volume", "inspect", "nope")
    assert r.returncode == 1 and "get nope: no such volume" in r.stderr
    out = ok(daemon.cli("volume", "prune", "-f"))
    assert out == "Total reclaimed space: 0B\n"                 # named volumes stay without -a
    out = ok(daemon.cli("volume", "prune", "-f", "-a", "--filter", "label=demo=1"))
    assert out.startswith("Deleted Volumes:\ndata1\n") and "Total reclaimed space: 5B" in out
    assert ok(daemon.cli("volume", "rm", "data2")) == "data2\n"
    assert volume_dirs(daemon) == []


def test_local_driver_tmpfs_and_bind_options(daemon, busybox, tmp_path):
    def mounted(path):
        return any(line.split()[4] == path for line in open("/proc/self/mountinfo"))
    ok(daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=8m", "tv"))
    data = os.path.join(daemon.data_root, "volumes", "tv", "_data")
    assert not mounted(data)
    cid = ok(daemon.cli("run", "-d", "-v", "tv:/t", "busybox", "sleep", "60")).strip()
    assert mounted(data)
    out = ok(daemon.cli("exec", cid, "df", "-k", "/t"))
    assert "tmpfs" in out and "8192" in out
    ok(daemon.cli("rm", "-f", cid))
    assert until(lambda: not mounted(data))                # unmounted with its last user
    host_dir = tmp_path / "device"
    host_dir.mkdir()
    (host_dir / "already").write_text("here\n")
    ok(daemon.cli("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={host_dir}", "bv"))
    assert ok(daemon.cli("run", "--rm", "-v", "bv:/b", "busybox", "cat", "/b/already")) == "here\n"
    ok(daemon.cli("volume", "rm", "bv", "tv"))
    assert (host_dir / "already").read_text() == "here\n"     # a bound device is never emptied
    r = daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=8m,bogus", "bad")
    assert r.returncode == 1 and "failed to mount local volume" in r.stderr
    r = daemon.cli("volume", "create", "-o", "foo=bar", "bad")
    assert 'invalid option: "foo"' in r.stderr
    r = daemon.cli("volume", "create", "bad/name")
    assert "includes invalid characters for a local volume name" in r.stderr
    assert ok(daemon.cli("volume", "ls", "-q")) == "" and volume_dirs(daemon) == []


def test_volumes_docker_py(docker_client, busybox):
    api = docker_client.api
    v = docker_client.volumes.create("pyvol", labels={"k": "v"})
    assert v.name == "pyvol" and v.attrs["Labels"] == {"k": "v"}
    assert docker_client.volumes.get("pyvol").attrs["Driver"] == "local"
    assert [x.name for x in docker_client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
    created = api.create_volume("pyvol2", driver="local", driver_opts={}, labels={})
    assert created["Name"] == "pyvol2"
    out = docker_client.containers.run("busybox", ["sh", "-c", "echo py > /m/f; cat /m/f"], remove=True,
                                       mounts=[docker.types.Mount("/m", "pyvol", type="volume")])
    assert out == b"py\n"
    c = docker_client.containers.create("busybox", ["true"], volumes={"pyvol2": {"bind": "/p", "mode": "ro"}})
    assert [(m["Name"], m["RW"]) for m in c.attrs["Mounts"]] == [("pyvol2", False)]
    with pytest.raises(docker.errors.APIError) as err:
        api.remove_volume("pyvol2")
    assert err.value.response.status_code == 409 and "volume is in use" in str(err.value)
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get("missing")
    with pytest.raises(docker.errors.NotFound):
        api.create_volume("x1", driver="nosuchplugin")
    assert api.prune_volumes()["VolumesDeleted"] is None
    pruned = api.prune_volumes(filters={"all": True})
    assert sorted(pruned["VolumesDeleted"]) == ["pyvol", "pyvol2"] and pruned["SpaceReclaimed"] == 3
    assert docker_client.volumes.list() == []


@needs_docker_cli
def test_volume_command_docker_cli(daemon, busybox):
    ok(docker_cli(daemon, "volume", "create", "--label", "demo=1", "vv"))
    ok(docker_cli(daemon, "volume", "create", "--label", "demo=1", "v2"))
    assert ok(docker_cli(daemon, "volume", "ls", "--format", "{{.Name}}")).split() == ["v2", "vv"]
    ok(docker_cli(daemon, "run", "--name", "user", "-v", "vv:/v", "busybox", "true"))
    assert ok(docker_cli(daemon, "volume", "ls", "-q", "--filter", "dangling=true")).split() == ["v2"]
    r = docker_cli(daemon, "volume", "rm", "vv")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    out = ok(docker_cli(daemon, "volume", "prune", "-f", "--filter", "label=demo=1", "-a"))
    assert "v2" in out and "Total reclaimed space: 0B" in out
    assert json.loads(ok(docker_cli(daemon, "volume", "inspect", "vv")))[0]["Labels"] == {"demo": "1"}
    ok(docker_cli(daemon, "rm", "user"))
    ok(docker_cli(daemon, "volume", "rm", "vv"))
    r = docker_cli(daemon, "volume", "rm", "vv")
    assert r.returncode == 1 and "no such volume" in r.stderr
    ok(docker_cli(daemon, "volume", "rm", "-f", "vv"))


# ------------------------------------------------------------------------------------------ 4 binds

def test_bind_mounts_hide_content_and_leave_the_host_alone(daemon, busybox, tmp_path):
    host = tmp_path / "conf"
    host.mkdir()
    (host / "only-here").write_text("h\n")
    os.chown(host, 4242, 4242)
    out = ok(daemon.cli("run", "--rm", "-v", f"{host}:/etc", "busybox", "ls", "/etc"))
    assert out.split() == ["only-here"]                       # the image's /etc is hidden
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    assert ok(daemon.cli("run", "--rm", "-v", f"{single}:/etc/motd:ro", "busybox", "cat", "/etc/motd")) == \
        "one file\n"
    r = daemon.cli("run", "--rm", "-v", f"{host}:/c:ro", "busybox", "touch", "/c/x")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    ok(daemon.cli("run", "--name", "bb", "-v", f"{host}:/c:z", "busybox", "sh", "-c", "echo w > /c/written"))
    ok(daemon.cli("rm", "-v", "bb"))
    st = os.stat(host)
    assert (st.st_uid, st.st_gid) == (4242, 4242) and sorted(os.listdir(host)) == ["only-here", "written"]
    missing = tmp_path / "made" / "by" / "run"
    ok(daemon.cli("run", "--rm", "-v", f"{missing}:/m", "busybox", "true"))
    assert missing.is_dir()                                   # `-v` creates a missing host directory
    r = daemon.cli("run", "--rm", "--mount", f"type=bind,src={tmp_path}/absent,dst=/m", "busybox", "true")
    assert r.returncode == 125 and f"bind source path does not exist: {tmp_path}/absent" in r.stderr
    assert not (tmp_path / "absent").exists()


@needs_docker_cli
def test_bind_propagation_where_the_host_allows(daemon, busybox, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        ok(docker_cli(daemon, "run", "--rm", "--privileged", "--mount",
                      f"type=bind,src={shared},dst=/x,bind-propagation=rshared", "busybox", "sh", "-c",
                      "mkdir /x/sub && mount -t tmpfs tmpfs /x/sub && touch /x/sub/seen"))
        assert (shared / "sub" / "seen").exists()             # the container's mount reached the host
        subprocess.run(["umount", str(shared / "sub")], check=True)
        private = tmp_path / "private"
        private.mkdir()
        r = daemon.cli("run", "--rm", "-v", f"{private}:/x:rshared", "busybox", "true")
        assert r.returncode != 0 and "is not a shared mount" in r.stderr
    finally:
        subprocess.run(["umount", "-R", str(shared)], check=False)


# ------------------------------------------------------------------------------------------ 5 tmpfs

def test_tmpfs_and_read_only_root(daemon, busybox):
    out = ok(daemon.cli("run", "--rm", "--tmpfs", "/run:size=1m,mode=700", "busybox", "sh", "-c",
                        "grep ' /run ' /proc/mounts; stat -c %a /run"))
    assert "tmpfs /run tmpfs rw,nosuid,nodev,noexec" in out and "size=1024k" in out and out.endswith("700\n")
    out = ok(daemon.cli("run", "--rm", "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=2m,tmpfs-mode=1770",
                        "busybox", "sh", "-c", "grep ' /scratch ' /proc/mounts; stat -c %a /scratch"))
    assert "size=2048k" in out and out.endswith("1770\n")
    r = daemon.cli("run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c",
                   "touch /tmp/ok && touch /nope")
    assert r.returncode != 0 and "Read-only file system" in r.stderr and "/tmp/ok" not in r.stderr


# ------------------------------------------------------------------------------------------ 6 volumes-from

@needs_docker_cli
def test_volumes_from_and_the_data_container_pattern(daemon, busybox, tmp_path):
    assert ok(docker_cli(daemon, "run", "--name", "dbdata", "-v", "/dbdata", "-v", f"{tmp_path}:/hostside",
                         "busybox", "echo", "data-only")) == "data-only\n"
    cid = ok(docker_cli(daemon, "run", "-d", "--name", "db1", "--volumes-from", "dbdata", "busybox", "sh", "-c",
                        "echo row1 > /dbdata/table; echo h > /hostside/h; sleep 60")).strip()
    assert until(lambda: (tmp_path / "h").exists())
    out = ok(docker_cli(daemon, "run", "--rm", "--volumes-from", "db1:ro", "busybox", "sh", "-c",
                        "cat /dbdata/table; touch /dbdata/x 2>&1 || true"))
    assert out.startswith("row1\n") and "Read-only file system" in out
    db = {m["Destination"]: m for m in json.loads(ok(docker_cli(daemon, "inspect", "db1")))[0]["Mounts"]}
    data = {m["Destination"]: m for m in json.loads(ok(docker_cli(daemon, "inspect", "dbdata")))[0]["Mounts"]}
    assert db["/dbdata"]["Name"] == data["/dbdata"]["Name"] and db["/hostside"]["Source"] == str(tmp_path)
    r = docker_cli(daemon, "run", "--rm", "--volumes-from", "ghost", "busybox", "true")
    assert r.returncode == 125 and "No such container: ghost" in r.stderr
    ok(docker_cli(daemon, "rm", "-f", cid))
    ok(docker_cli(daemon, "rm", "-v", "dbdata"))
    assert ok(docker_cli(daemon, "volume", "ls", "-q")) == ""
    assert (tmp_path / "h").exists()


# ------------------------------------------------------------------------------------------ 7 deletion rules

@needs_docker_cli
def test_deletion_rules_docker_cli(daemon, busybox):
    ok(docker_cli(daemon, "run", "--rm", "-v", "/gone", "-v", "named:/named", "busybox", "true"))
    assert ok(docker_cli(daemon, "volume", "ls", "-q")).split() == ["named"]   # --rm: anonymous only
    ok(docker_cli(daemon, "create", "--name", "ca", "-v", "/shared", "busybox", "true"))
    anon = ok(docker_cli(daemon, "inspect", "-f", "{{(index .Mounts 0).Name}}", "ca")).strip()
    ok(docker_cli(daemon, "create", "--name", "cb", "--volumes-from", "ca", "busybox", "true"))
    r = docker_cli(daemon, "volume", "rm", anon)
    assert r.returncode == 1 and f"remove {anon}: volume is in use - [" in r.stderr
    ok(docker_cli(daemon, "rm", "-v", "ca"))
    assert anon in ok(docker_cli(daemon, "volume", "ls", "-q")).split()         # b still references it
    ok(docker_cli(daemon, "rm", "-v", "cb"))
    ok(docker_cli(daemon, "volume", "prune", "-f"))
    assert ok(docker_cli(daemon, "volume", "ls", "-q")).split() == ["named"]
    ok(docker_cli(daemon, "volume", "rm", "named"))
    assert volume_dirs(daemon) == []


# ------------------------------------------------------------------------------------------ 8, 9

def test_orphans_ps_filter_df_and_events(daemon, busybox):
    since = time.time()
    ok(daemon.cli("run", "--name", "maker", "-v", "/data", "-v", "kept:/kept", "busybox", "sh", "-c",
                  "head -c 3000 /dev/zero > /data/blob"))
    ps = ok(daemon.cli("ps", "-a", "--filter", "volume=kept", "--format", "{{.Names}}"))
    assert ps == "maker\n"
    assert ok(daemon.cli("ps", "-a", "--filter", "volume=/data", "--format", "{{.Names}}")) == "maker\n"
    assert ok(daemon.cli("ps", "-a", "--filter", "volume=other", "--format", "{{.Names}}")) == ""
    anon = json.loads(ok(daemon.cli("inspect", "maker")))[0]["Mounts"][0]["Name"]
    assert ok(daemon.cli("volume", "orphans", "-q")) == ""
    ok(daemon.cli("rm", "maker"))
    rows = [json.loads(line) for line in ok(daemon.cli("volume", "orphans", "--format", "json")).splitlines()]
    by_name = {r["Name"]: r for r in rows}
    assert set(by_name) == {anon, "kept"}
    assert by_name[anon]["CreatedBy"]["Name"] == "maker" and by_name[anon]["CreatedBy"]["Image"] == "busybox"
    assert by_name[anon]["LastUsedBy"][0]["Name"] == "maker" and by_name[anon]["Size"] == 3000
    table = ok(daemon.cli("volume", "orphans"))
    assert table.splitlines()[0].split() == ["VOLUME", "NAME", "ORPHANED", "CREATED", "BY", "LAST", "USED", "BY",
                                             "SIZE"]
    assert "maker (busybox)" in table and "3kB" in table
    df = json.loads(urlopen_json(daemon, "/system/df"))
    sizes = {v["Name"]: v["UsageData"] for v in df["Volumes"]}
    assert sizes[anon] == {"Size": 3000, "RefCount": 0}
    out = ok(daemon.cli("system", "df", "-v"))
    assert anon in out and "Local Volumes space usage" in out
    pruned = ok(daemon.cli("volume", "prune", "-f", "-a"))
    assert "Total reclaimed space: 3kB" in pruned
    evs = [(e["Action"], e["Actor"]["ID"]) for e in map(json.loads, ok(daemon.cli(
        "events", "--since", str(since), "--until", str(time.time() + 0.5), "--filter", "type=volume",
        "--format", "{{json .}}")).splitlines())]
    assert evs[:4] == [("create", anon), ("create", "kept"), ("mount", anon), ("mount", "kept")]
    assert ("unmount", anon) in evs and ("destroy", anon) in evs and ("destroy", "kept") in evs
    assert evs[-1] == ("prune", "")


def urlopen_json(daemon, path: str) -> str:
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.sock)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()


@needs_docker_cli
def test_relabel_warning_ps_filter_and_df_docker_cli(daemon, busybox, tmp_path):
    """`:z` is accepted and said to have no effect (the docker CLI prints the create's Warnings);
    `ps --filter volume=` and `system df -v` through the docker CLI and docker-py."""
    src = tmp_path / "src"
    src.mkdir()
    r = docker_cli(daemon, "run", "--name", "lab", "-v", f"{src}:/s:z", "-v", "dfvol:/d", "busybox", "sh", "-c",
                   "echo hi > /s/f; head -c 2000 /dev/zero > /d/blob")
    ok(r)
    assert f'WARNING: "{src}:/s:z": the "z" option (SELinux relabeling) has no effect' in r.stderr
    assert (src / "f").read_text() == "hi\n"
    assert ok(docker_cli(daemon, "ps", "-a", "--filter", "volume=dfvol", "--format", "{{.Names}}")) == "lab\n"
    assert ok(docker_cli(daemon, "ps", "-a", "--filter", f"volume={src}", "--format", "{{.Names}}")) == "lab\n"
    out = ok(docker_cli(daemon, "system", "df", "-v", "--format", "{{json .Volumes}}"))
    sizes = {v["Name"]: v["Size"] for v in json.loads(out)}
    assert sizes["dfvol"] == "2kB"
    out = ok(docker_cli(daemon, "system", "df", "-v"))
    assert "Local Volumes space usage:" in out and any(
        line.split()[:3] == ["dfvol", "1", "2kB"] for line in out.splitlines())
    ok(docker_cli(daemon, "rm", "lab"))
    ok(docker_cli(daemon, "volume", "rm", "dfvol"))


def test_relabel_warning_our_cli(daemon, busybox, tmp_path):
    r = daemon.cli("create", "--name", "labz", "-v", f"{tmp_path}:/s:Z", "busybox", "true")
    ok(r)
    assert f'WARNING: "{tmp_path}:/s:Z": the "Z" option (SELinux relabeling) has no effect' in r.stderr
    ok(daemon.cli("rm", "labz"))


def test_ps_filter_volume_docker_py(docker_client, busybox):
    c = docker_client.containers.create("busybox", ["true"], volumes={"pyfilt": {"bind": "/f", "mode": "rw"}})
    assert [x.id for x in docker_client.containers.list(all=True, filters={"volume": "pyfilt"})] == [c.id]
    assert docker_client.containers.list(all=True, filters={"volume": "other"}) == []
    df = docker_client.df()
    assert {v["Name"]: v["UsageData"]["RefCount"] for v in df["Volumes"]}["pyfilt"] == 1
    c.remove(v=True)
    docker_client.volumes.get("pyfilt").remove()


# ------------------------------------------------------------------------------------------ cp

def test_cp_reaches_the_volume(docker_client, busybox):
    api = docker_client.api
    c = api.create_container("busybox", ["cat", "/vol1/file"], volumes=["/vol1"])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        ti = tarfile.TarInfo("file")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"cp\n"))
    assert api.put_archive(c["Id"], "/vol1", raw.getvalue())          # before start, as docker-py's test
    api.start(c["Id"])
    api.wait(c["Id"])
    assert api.logs(c["Id"]) == b"cp\n"
    stream, stat = api.get_archive(c["Id"], "/vol1")
    assert stat["name"] == "vol1"
    names = tarfile.open(fileobj=io.BytesIO(b"".join(stream))).getnames()
    assert names == ["vol1", "vol1/file"]
    api.remove_container(c["Id"], v=True)
    assert docker_client.volumes.list() == []


# ------------------------------------------------------------------------------------------ 10 recovery

def test_kill9_with_volumes_mounted_is_reconciled(make_daemon, busybox_tar):
    d = make_daemon().start()
    try:
        ok(d.cli("import", busybox_tar, "busybox:latest"))
        ok(d.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=4m", "tv"))
        data = os.path.join(d.data_root, "volumes", "tv", "_data")
        cid = ok(d.cli("run", "-d", "-v", "tv:/t", "-v", "/anon", "busybox", "sleep", "300")).strip()
        d.kill9()
        pid = int(open(os.path.join(d.data_root, "runc", cid, "state.json")).read().split('"init_process_pid":')[1]
                  .split(",")[0])
        os.kill(pid, 9)                                   # the container dies while the daemon is away
        d.start()
        assert ok(d.cli("inspect", "-f", "{{.State.Status}}", cid)) == "exited\n"
        assert until(lambda: not any(line.split()[4] == data for line in open("/proc/self/mountinfo")))
        evs = ok(d.cli("events", "--since", "0", "--until", str(time.time() + 0.5), "--filter", "type=volume",
                       "--format", "{{.Action}} {{.Actor.ID}}")).splitlines()
        assert "unmount tv" in evs
        ok(d.cli("rm", "-v", cid))
        ok(d.cli("volume", "rm", "tv"))
        assert volume_dirs(d) == []
    finally:
        if d.proc.poll() is None:
            from tests.integration.conftest import remove_all_containers
            remove_all_containers(d)
            d.stop()
