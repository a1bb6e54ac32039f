"""docker cp: HEAD / GET / PUT /containers/{id}/archive under runc, from docker-py, the docker CLI and ours;
hostile uploads checked against a canary directory on the host."""
import base64
import io
import json
import os
import shutil
import subprocess
import tarfile

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli
from tests.reliability import hostile

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


def _tar(files: dict) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return raw.getvalue()


def _members(chunks) -> dict:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isfile() else m.type) for m in tf.getmembers()}


@pytest.mark.parametrize("running", [True, False])
def test_put_and_get_archive_docker_py(docker_client, busybox, running):
    api = docker_client.api
    if running:
        c = docker_client.containers.run("busybox", ["sleep", "60"], detach=True)
    else:
        c = docker_client.containers.create("busybox", ["true"])
    assert c.put_archive("/tmp", _tar({"d": None, "d/a.txt": b"hello", "top.txt": b"top"}))
    chunks, stat = c.get_archive("/tmp/d")
    assert stat["name"] == "d" and stat["mode"] & (1 << 31) and stat["linkTarget"] == ""
    got = _members(chunks)
    assert got["d/a.txt"] == b"hello" and "d" in got
    chunks, stat = c.get_archive("/tmp/top.txt")
    assert stat == {**stat, "name": "top.txt", "size": 3, "mode": 0o644}
    assert _members(chunks) == {"top.txt": b"top"}
    # the contents of a directory with /.
    chunks, stat = c.get_archive("/tmp/d/.")
    assert stat["name"] == "." and _members(chunks)["./a.txt"] == b"hello"
    # HEAD
    head = api.head(api._url("/containers/{0}/archive", c.id), params={"path": "/bin/sh"})
    assert head.status_code == 200
    st = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert st["name"] == "sh"
    # missing path: Docker's 404
    with pytest.raises(docker.errors.NotFound) as err:
        c.get_archive("/nope/x")
    assert f"Could not find the file /nope/x in container {c.id}" in str(err.value)
    with pytest.raises(docker.errors.NotFound):
        c.put_archive("/nope", _tar({"x": b"x"}))
    with pytest.raises(docker.errors.APIError) as err:
        c.put_archive("/tmp/top.txt", _tar({"x": b"x"}))
    assert err.value.response.status_code == 400 and "not a directory" in str(err.value)
    events = [e["Action"] for e in api.events(since=0, until=int(__import__("time").time()) + 1, decode=True,
                                              filters={"container": c.id})]
    assert "archive-path" in events and "extract-to-dir" in events
    c.remove(force=True)


def test_symlinks_resolve_inside_the_container(docker_client, busybox, tmp_path):
    c = docker_client.containers.create("busybox", ["true"])
    # /lnk -> /etc in the container: reads the container's /etc, never the host's
    link = tarfile.TarInfo("lnk")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    up = tarfile.TarInfo("up")
    up.type, up.linkname = tarfile.SYMTYPE, "../../../../../../etc"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        tf.addfile(link)
        tf.addfile(up)
        ti = tarfile.TarInfo("etc/only-in-container")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"yes"))
    assert c.put_archive("/", raw.getvalue())
    chunks, stat = c.get_archive("/lnk")
    assert stat["mode"] & (1 << 27) and stat["linkTarget"] == "/etc"
    assert _members(chunks) == {"lnk": tarfile.SYMTYPE}
    chunks, stat = c.get_archive("/lnk/")
    got = _members(chunks)
    assert got["lnk/only-in-container"] == b"yes"
    chunks, _ = c.get_archive("/up/only-in-container")
    assert _members(chunks) == {"only-in-container": b"yes"}
    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/up/shadow")          # the host has /etc/shadow; the container does not
    # writing through the links lands in the container's /etc
    assert c.put_archive("/up", _tar({"written": b"w"}))
    assert not os.path.exists("/etc/written")
    chunks, _ = c.get_archive("/etc/written")
    assert _members(chunks) == {"written": b"w"}
    c.remove(force=True)


def test_hostile_uploads_write_nothing_outside(docker_client, busybox, tmp_path):
    canary = str(tmp_path / "canary")
    os.makedirs(canary)
    with open(os.path.join(canary, "victim"), "w") as fh:
        fh.write("original")
    before = hostile.snapshot(canary)
    c = docker_client.containers.create("busybox", ["true"])
    for name, (data, expect) in hostile.cases(canary).items():
        if name.startswith("sparse-") or name == "claims-100g":
            continue        # the extractor's own bounds, tested in tests/reliability
        try:
            c.put_archive("/tmp", data)
        except docker.errors.APIError as err:
            assert err.response.status_code in (400, 413), (name, err)
        assert hostile.snapshot(canary) == before, name
    c.remove(force=True)


def test_no_overwrite_dir_non_dir(docker_client, busybox):
    c = docker_client.containers.create("busybox", ["true"])
    api = docker_client.api
    url = api._url("/containers/{0}/archive", c.id)
    r = api._put(url, params={"path": "/", "noOverwriteDirNonDir": "1"}, data=_tar({"tmp": b"file"}))
    assert r.status_code == 400 and "cannot overwrite directory" in r.json()["message"]
    r = api._put(url, params={"path": "/", "noOverwriteDirNonDir": "1"}, data=_tar({"bin/sh": None}))
    assert r.status_code == 400 and "cannot overwrite non-directory" in r.json()["message"]
    c.remove(force=True)


@needs_docker_cli
def test_docker_cli_cp_both_ways(daemon, busybox, tmp_path):
    cid = docker_cli(daemon, "create", "busybox", "true").stdout.strip()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("deep")
    (src / "g").write_text("top")
    r = docker_cli(daemon, "cp", str(src), f"{cid}:/tmp/")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    r = docker_cli(daemon, "cp", f"{cid}:/tmp/src", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "sub" / "f").read_text() == "deep" and (out / "g").read_text() == "top"
    r = docker_cli(daemon, "cp", f"{cid}:/tmp/src/g", str(tmp_path / "g2"))
    assert r.returncode == 0 and (tmp_path / "g2").read_text() == "top"
    r = docker_cli(daemon, "cp", f"{cid}:/nope", str(tmp_path / "x"))
    assert r.returncode != 0 and "Could not find the file /nope in container" in r.stderr
    # a file named as a directory
    r = docker_cli(daemon, "cp", str(src / "g"), f"{cid}:/tmp/src/g/")
    assert r.returncode != 0
    r = docker_cli(daemon, "cp", f"{cid}:/etc/passwd", "-")
    assert r.returncode == 0 and "root:" in r.stdout
    docker_cli(daemon, "rm", "-f", cid)


def test_our_cli_cp_both_ways(daemon, busybox, tmp_path):
    cid = daemon.cli("create", "busybox", "true", check=True).stdout.strip()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("deep")
    daemon.cli("cp", str(src), f"{cid}:/tmp/", check=True)
    daemon.cli("cp", f"{cid}:/tmp/src", str(tmp_path / "out"), check=True)
    assert (tmp_path / "out" / "sub" / "f").read_text() == "deep"
    daemon.cli("cp", f"{cid}:/tmp/src/.", str(tmp_path / "out2"), check=True)
    assert (tmp_path / "out2" / "sub" / "f").read_text() == "deep"
    (tmp_path / "file").write_text("one")
    daemon.cli("cp", str(tmp_path / "file"), f"{cid}:/tmp/renamed", check=True)
    daemon.cli("cp", f"{cid}:/tmp/renamed", str(tmp_path / "back"), check=True)
    assert (tmp_path / "back").read_text() == "one"
    r = daemon.cli("cp", f"{cid}:/nope", str(tmp_path / "x"))
    assert r.returncode == 1 and "Could not find the file /nope in container" in r.stderr
    r = daemon.cli("cp", str(tmp_path / "file"), f"{cid}:/tmp/renamed/")
    assert r.returncode == 1 and "no such directory" in r.stderr
    daemon.cli("rm", "-f", cid, check=True)


@needs_docker_cli
def test_docker_cli_cp_modes(daemon, busybox, tmp_path):
    cid = docker_cli(daemon, "run", "-d", "-u", "33:34", "busybox", "sleep", "60").stdout.strip()
    (tmp_path / "owned").write_text("o")
    r = docker_cli(daemon, "cp", "-a", str(tmp_path / "owned"), f"{cid}:/tmp/")
    assert r.returncode == 0, r.stderr
    r = docker_cli(daemon, "exec", cid, "stat", "-c", "%u:%g", "/tmp/owned")
    if r.returncode == 0:                       # exec is another helper's verb
        assert r.stdout.strip() == "33:34"
    chunks = docker_cli(daemon, "cp", f"{cid}:/tmp/owned", "-")
    with tarfile.open(fileobj=io.BytesIO(chunks.stdout.encode())) as tf:
        assert [(m.name, m.uid, m.gid) for m in tf.getmembers()] == [("owned", 33, 34)]
    # -L follows a link; the copy takes the link's name
    docker_cli(daemon, "cp", str(tmp_path / "owned"), f"{cid}:/tmp/target")
    tar = _tar({})
    link = tarfile.TarInfo("lnk")
    link.type, link.linkname = tarfile.SYMTYPE, "/tmp/target"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        tf.addfile(link)
    r = subprocess.run([shutil.which("docker"), "-H", daemon.host, "cp", "-", f"{cid}:/tmp"], input=raw.getvalue(),
                       capture_output=True, env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "cfg")})
    assert r.returncode == 0, r.stderr
    assert tar
    r = docker_cli(daemon, "cp", "-L", f"{cid}:/tmp/lnk", str(tmp_path / "followed"))
    assert r.returncode == 0 and (tmp_path / "followed").read_text() == "o", r.stderr
    r = docker_cli(daemon, "cp", f"{cid}:/tmp/lnk", str(tmp_path / "as-link"))
    assert r.returncode == 0 and os.readlink(tmp_path / "as-link") == "/tmp/target"
    # contents of a directory with /.
    r = docker_cli(daemon, "cp", f"{cid}:/etc/.", str(tmp_path / "etc-copy"))
    assert r.returncode == 0 and (tmp_path / "etc-copy" / "passwd").exists(), r.stderr
    docker_cli(daemon, "rm", "-f", cid)


def test_our_cli_cp_on_a_terminal_prints_progress_and_the_summary(daemon, busybox, tmp_path):
    """As docker cp (v28): quiet unless stdout is a terminal; then the progress line on stderr and
    `Successfully copied <tar bytes> to <dest>`."""
    import pty
    import sys
    from tests.integration.conftest import CLI, ROOT
    cid = daemon.cli("create", "busybox", "true", check=True).stdout.strip()
    (tmp_path / "f").write_bytes(b"y" * 3000)
    plain = daemon.cli("cp", str(tmp_path / "f"), f"{cid}:/tmp/f", check=True)
    assert plain.stderr == ""                    # no terminal: quiet
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, CLI, "-H", daemon.host, "cp", f"{cid}:/tmp/f", str(tmp_path / "g")],
                              stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=ROOT, timeout=30)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    text = seen.decode()
    assert "Preparing to copy..." in text and "Copying from container - " in text
    import re
    # the bytes of tar transferred, as the docker CLI counts them: more than the file's 3000
    assert re.search(r"Successfully copied (3\.[1-9]\d*|[4-9](\.\d+)?)kB to " + re.escape(str(tmp_path / "g")), text), text
    assert (tmp_path / "g").read_bytes() == b"y" * 3000
    daemon.cli("rm", "-f", cid, check=True)


def _tree(root):
    """Names the tar writers and --transform must not mangle, a hard link, a symlink, modes."""
    (root / "sub, [1] & .x").mkdir(parents=True)
    (root / "sub, [1] & .x" / "f*.txt").write_text("deep")
    (root / ".hidden").write_text("h")
    os.link(root / ".hidden", root / "hard")
    os.symlink("sub, [1] & .x/f*.txt", root / "lnk")
    (root / "exe").write_text("#!/bin/sh\n")
    os.chmod(root / "exe", 0o751)
    (root / "big").write_bytes(os.urandom(600 << 10))          # large enough to go by sendfile
    (root / "span-sized").write_bytes(os.urandom(256 << 10))


def _same_tree(a, b):
    for rel in ("sub, [1] & .x/f*.txt", ".hidden", "hard", "exe", "big", "span-sized"):
        assert (b / rel).read_bytes() == (a / rel).read_bytes(), rel
    assert os.readlink(b / "lnk") == "sub, [1] & .x/f*.txt"
    assert os.stat(b / "hard").st_ino == os.stat(b / ".hidden").st_ino
    assert os.stat(b / "exe").st_mode & 0o7777 == 0o751


@pytest.mark.parametrize("writer", ["gnu-tar", "tarfile"])
def test_our_cli_cp_trees_both_ways_with_and_without_gnu_tar(daemon, busybox, tmp_path, writer):
    """The CLI makes and unpacks the local archive with GNU tar where it is installed, else with
    tarfile (here: a PATH whose `tar` is busybox's): both give the docker CLI's results."""
    import sys
    from tests.integration.conftest import CLI, ROOT
    env = dict(os.environ)
    if writer == "tarfile":
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        os.symlink(shutil.which("busybox"), bin_dir / "tar")
        env["PATH"] = f"{bin_dir}:{env['PATH']}"

    def cli(*args):
        r = subprocess.run([sys.executable, CLI, "-H", daemon.host, *args], capture_output=True, text=True,
                           timeout=60, cwd=ROOT, env=env)
        assert r.returncode == 0, (args, r.stderr)
        return r

    cid = daemon.cli("run", "-d", "busybox", "sleep", "60", check=True).stdout.strip()
    src = tmp_path / "my src"
    _tree(src)
    cli("cp", str(src), f"{cid}:/tmp/")                    # into an existing directory
    cli("cp", str(src), f"{cid}:/tmp/renamed, [2] & x")     # a new name
    cli("cp", f"{str(src)}/.", f"{cid}:/tmp/")              # contents into an existing directory
    r = daemon.cli("exec", cid, "sh", "-c", "cat '/tmp/my src/sub, [1] & .x/f*.txt' "
                   "'/tmp/renamed, [2] & x/hard' /tmp/.hidden; readlink /tmp/lnk", check=True)
    assert r.stdout == "deephhsub, [1] & .x/f*.txt\n"
    out = tmp_path / "out"
    cli("cp", f"{cid}:/tmp/renamed, [2] & x", str(out))     # a new local name
    _same_tree(src, out)
    cli("cp", f"{cid}:/tmp/my src", str(out))               # into an existing local directory
    _same_tree(src, out / "my src")
    contents = tmp_path / "contents"
    contents.mkdir()
    os.chmod(contents, 0o700)
    cli("cp", f"{cid}:/tmp/renamed, [2] & x/.", str(contents))   # contents into an existing one
    _same_tree(src, contents)
    assert os.stat(contents).st_mode & 0o777 == 0o700        # the target's own metadata is kept
    cli("cp", f"{cid}:/tmp/.hidden", str(tmp_path / "single"))
    assert (tmp_path / "single").read_text() == "h"
    daemon.cli("rm", "-f", cid, check=True)


def test_get_archive_of_a_large_file_is_exact(docker_client, busybox):
    """Large files leave the daemon by sendfile (tests/unit/test_filespan.py covers one that shrinks)."""
    c = docker_client.containers.run("busybox", ["sh", "-c", "dd if=/dev/urandom of=/tmp/a bs=1024 count=700 "
                                                 "2>/dev/null; sleep 60"], detach=True)
    try:
        import time
        for _ in range(100):
            if c.exec_run(["test", "-s", "/tmp/a"]).exit_code == 0 and \
                    c.exec_run(["stat", "-c", "%s", "/tmp/a"]).output.strip() == b"716800":
                break
            time.sleep(0.1)
        want = c.exec_run(["md5sum", "/tmp/a"]).output.split()[0].decode()
        chunks, stat = c.get_archive("/tmp/a")
        data = b"".join(chunks)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            [member] = tf.getmembers()
            body = tf.extractfile(member).read()
        import hashlib
        assert member.size == 716800 == stat["size"] and hashlib.md5(body).hexdigest() == want
    finally:
        c.remove(force=True)
