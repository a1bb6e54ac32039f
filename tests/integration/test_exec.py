"""exec end to end: docker-py, the docker CLI and our CLI against a real daemon, real runc and conmon;
`exec -it` under a real pseudo-terminal; a daemon SIGKILLed during a running exec."""
import json
import os
import shutil
import struct
import time

import docker
import pytest

from tests.integration.conftest import DOCKER_BIN, needs_docker_cli, until
from tests.integration.test_attach import docker_env, our_cli, run_in_pty, run_piped

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


def exec_conmons(data_root: str) -> list[int]:
    """conmon --exec processes of this data root."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"conmon") and b"--exec" in argv \
                and any(data_root.encode() in a for a in argv):
            found.append(int(pid))
    return found


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


# ------------------------------------------------------------------------------------------ docker-py

def test_docker_py_exec_run_variants_and_inspect(docker_client, busybox):
    c = docker_client.containers.run("busybox", "cat", detach=True, stdin_open=True, name="ex")
    cmd = "sh -c 'echo hello out; sleep 0.5; echo hello err >&2; exit 3'"
    assert c.exec_run(cmd) == (3, b"hello out\nhello err\n")
    assert c.exec_run(cmd, demux=True) == (3, (b"hello out\n", b"hello err\n"))
    assert c.exec_run(cmd, tty=True) == (3, b"hello out\r\nhello err\r\n")
    res = c.exec_run(cmd, stream=True, demux=True)
    assert res.exit_code is None and list(res.output) == [(b"hello out\n", None), (None, b"hello err\n")]
    assert c.exec_run(["echo", "a  b"]) == (0, b"a  b\n")
    assert c.exec_run("env", environment=["X=Y"]).output.count(b"X=Y\n") == 1
    assert c.exec_run("pwd", workdir="/var").output == b"/var\n"
    assert c.exec_run("id -u", user="nobody").output == b"65534\n"
    assert c.exec_run("mkdir /does/not/exist").exit_code != 0
    res = c.exec_run("nonexistent-binary")
    assert res.exit_code == 127 and b"executable file not found" in res.output
    assert c.exec_run(["sleep", "30"], detach=True) == (None, "")

    api = docker_client.api
    c.reload()
    assert len(c.attrs["ExecIDs"]) == 1                  # the detached sleep
    eid = c.attrs["ExecIDs"][0]
    info = api.exec_inspect(eid)
    assert info["Running"] is True and info["ExitCode"] is None and info["Pid"] > 0
    assert info["ProcessConfig"] == {"tty": False, "entrypoint": "sleep", "arguments": ["30"], "privileged": False,
                                     "user": ""}
    assert info["ContainerID"] == c.id and info["OpenStdin"] is False and info["CanRemove"] is False
    os.kill(info["Pid"], 9)
    until(lambda: api.exec_inspect(eid)["ExitCode"] is not None)
    assert api.exec_inspect(eid)["ExitCode"] == 137
    c.reload()
    assert c.attrs["ExecIDs"] is None

    # the low-level API: create, start on a socket, resize a TTY
    e = api.exec_create(c.id, ["sh", "-c", "read x; stty size; echo got $x"], stdin=True, tty=True)
    sock = api.exec_start(e, tty=True, socket=True)
    api.exec_resize(e, height=21, width=77)
    raw = sock._sock
    raw.sendall(b"typed\n")
    raw.settimeout(10)
    out = b""
    while chunk := raw.recv(4096):
        out += chunk
    sock.close()
    assert b"21 77\r\ngot typed\r\n" in out
    assert api.exec_inspect(e)["ExitCode"] == 0
    # frames follow the start request's Tty, as moby (docker-py's own test_exec_start_socket)
    e = api.exec_create(c.id, ["printf", "yay"], tty=True)
    sock = api.exec_start(e, socket=True)
    data = b""
    while chunk := sock._sock.recv(4096):
        data += chunk
    sock.close()
    assert frames(data) == [(1, b"yay")]
    with pytest.raises(docker.errors.NotFound, match="No such exec instance: nope"):
        api.exec_inspect("nope")
    with pytest.raises(docker.errors.APIError, match="No exec command specified"):
        api.exec_create(c.id, [])
    with pytest.raises(docker.errors.APIError, match="exec command .* has already run"):
        api.exec_start(e, detach=True)
    c.pause()
    with pytest.raises(docker.errors.APIError, match=f"Container {c.id} is paused, unpause the container before exec"):
        api.exec_create(c.id, "true")
    c.unpause()
    e = api.exec_create(c.id, "true")
    c.kill()
    with pytest.raises(docker.errors.APIError, match=f"container {c.id} is not running") as err:
        api.exec_create(c.id, "true")
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.APIError, match=f"container {c.id} is not running"):
        api.exec_start(e)
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        api.exec_inspect(e)


def test_exec_events_and_filters(daemon, docker_client, busybox):
    c = docker_client.containers.run("busybox", "sleep 30", detach=True, name="evx", labels={"k": "v"})
    since = time.time() - 1
    exit_code, _ = c.exec_run(["sh", "-c", "exit 4"])
    assert exit_code == 4
    got = list(docker_client.api.events(since=since, until=time.time() + 0.5, decode=True,
                                        filters={"event": ["exec_create", "exec_start", "exec_die"]}))
    assert [e["Action"] for e in got] == ["exec_create: sh -c exit 4", "exec_start: sh -c exit 4", "exec_die"]
    eid = got[0]["Actor"]["Attributes"]["execID"]
    assert all(e["Type"] == "container" and e["Actor"]["ID"] == c.id and e["Actor"]["Attributes"]["execID"] == eid
               and e["Actor"]["Attributes"]["name"] == "evx" and e["Actor"]["Attributes"]["k"] == "v" for e in got)
    assert got[2]["Actor"]["Attributes"]["exitCode"] == "4"
    text = daemon.cli("events", "--since", str(since), "--until", "0s", "--filter", "event=exec_die",
                      "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}", check=True).stdout
    assert text.split("\n")[0] == "exec_die 4"
    c.remove(force=True)


# ------------------------------------------------------------------------------------------ docker CLI

@needs_docker_cli
def test_docker_cli_exec(daemon, busybox):
    env = docker_env(daemon)
    run_piped([DOCKER_BIN, "run", "-d", "--name", "dc", "busybox", "sleep", "60"], b"", env)
    r = run_piped([DOCKER_BIN, "exec", "dc", "sh", "-c", "echo out; echo err >&2; exit 3"], b"", env)
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    r = run_piped([DOCKER_BIN, "exec", "-i", "dc", "sh", "-c", "read x; echo got $x; exit 4"], b"hello\n", env)
    assert (r.returncode, r.stdout) == (4, b"got hello\n")
    payload = os.urandom(200_000).hex().encode()
    r = run_piped([DOCKER_BIN, "exec", "-i", "dc", "md5sum"], payload, env)
    import hashlib
    assert r.returncode == 0 and r.stdout.split()[0].decode() == hashlib.md5(payload).hexdigest()
    r = run_piped([DOCKER_BIN, "exec", "-u", "nobody", "-w", "/tmp", "-e", "A=1", "dc", "sh", "-c",
                   "id -u; pwd; echo $A"], b"", env)
    assert r.stdout == b"65534\n/tmp\n1\n"
    r = run_piped([DOCKER_BIN, "exec", "dc", "nonexistent-binary"], b"", env)
    assert r.returncode == 127 and b"executable file not found" in r.stdout + r.stderr
    r = run_piped([DOCKER_BIN, "exec", "dc", "/etc"], b"", env)
    assert r.returncode == 126
    r = run_piped([DOCKER_BIN, "exec", "-d", "dc", "sh", "-c", "sleep 0.2; touch /made"], b"", env)
    assert r.returncode == 0 and r.stdout == b""
    assert until(lambda: run_piped([DOCKER_BIN, "exec", "dc", "ls", "/made"], b"", env).returncode == 0)
    out, rc = run_in_pty([DOCKER_BIN, "exec", "-it", "dc", "sh", "-c", "read x; eval $x; tty; stty size; exit 6"],
                         b"echo typed-$((40+2))\n", env)
    assert rc == 6 and b"typed-42\r\n/dev/pts/0\r\n33 120\r\n" in out
    out, rc = run_in_pty([DOCKER_BIN, "exec", "-it", "dc", "sh"], b"echo in-$((1+1))\n", env, timeout=10,
                         then=(b"in-2", b"\x10\x11"))
    assert rc == 1 and b"in-2" in out and b"read escape sequence" in out   # detached with ctrl-p,ctrl-q, as docker
    info = json.loads(run_piped([DOCKER_BIN, "inspect", "dc"], b"", env).stdout)[0]
    assert len(info["ExecIDs"]) == 1                         # the detached shell runs on
    run_piped([DOCKER_BIN, "stop", "-t", "0", "dc"], b"", env)
    r = run_piped([DOCKER_BIN, "exec", "dc", "true"], b"", env)
    assert r.returncode == 1 and b"is not running" in r.stderr
    run_piped([DOCKER_BIN, "rm", "dc"], b"", env)
    assert until(lambda: not exec_conmons(daemon.data_root))


# ------------------------------------------------------------------------------------------ our CLI

def test_our_cli_exec(daemon, busybox):
    cli = our_cli(daemon)
    daemon.cli("run", "-d", "--name", "oc", "busybox", "sleep", "60", check=True)
    r = run_piped(cli + ["exec", "oc", "sh", "-c", "echo out; echo err >&2; exit 3"], b"")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    r = run_piped(cli + ["exec", "-i", "oc", "sh", "-c", "read x; echo got $x; exit 4"], b"hello\n")
    assert (r.returncode, r.stdout) == (4, b"got hello\n")
    env_file = os.path.join(daemon.base, "envfile")
    with open(env_file, "w") as fh:
        fh.write("# comment\nB=from-file\n")
    r = run_piped(cli + ["exec", "-u", "nobody", "-w", "/tmp", "-e", "A=1", "--env-file", env_file, "oc", "sh", "-c",
                         "id -u; pwd; echo $A $B"], b"")
    assert r.stdout == b"65534\n/tmp\n1 from-file\n"
    r = run_piped(cli + ["exec", "oc", "nonexistent-binary"], b"")
    assert r.returncode == 127 and b"executable file not found" in r.stdout
    r = run_piped(cli + ["exec", "--privileged", "oc", "sh", "-c", "grep CapEff /proc/self/status"], b"")
    assert r.returncode == 0 and r.stdout.split()[1] != b"00000000a80425fb"
    r = run_piped(cli + ["exec", "-d", "oc", "sleep", "0.2"], b"")
    assert (r.returncode, r.stdout) == (0, b"")
    out, rc = run_in_pty(cli + ["exec", "-it", "oc", "sh", "-c", "read x; eval $x; tty; stty size; exit 6"],
                         b"echo typed-$((40+2))\n")
    assert rc == 6 and b"typed-42\r\n/dev/pts/0\r\n33 120\r\n" in out
    daemon.cli("pause", "oc", check=True)
    r = run_piped(cli + ["exec", "oc", "true"], b"")
    assert r.returncode == 1 and b"is paused, unpause the container before exec" in r.stderr
    daemon.cli("rm", "-f", "oc", check=True)
    r = run_piped(cli + ["exec", "oc", "true"], b"")
    assert r.returncode == 1 and b"No such container: oc" in r.stderr
    assert until(lambda: not exec_conmons(daemon.data_root))


# ------------------------------------------------------------------------------------------ the daemon away

def test_daemon_kill9_during_a_running_exec(daemon, busybox):
    client = docker.APIClient(base_url=daemon.host, version="1.45", timeout=30)
    cid = client.create_container("busybox", "sleep 60", name="k9")["Id"]
    client.start(cid)
    marker = "/tmp/ran"
    running = client.exec_create(cid, ["sh", "-c", f"sleep 6; echo done > {marker}; exit 7"])["Id"]
    ends_away = client.exec_create(cid, ["sh", "-c", "sleep 0.5; exit 5"])["Id"]
    finished = client.exec_create(cid, ["sh", "-c", "exit 9"])["Id"]
    client.exec_start(finished)
    client.exec_start(running, detach=True)
    client.exec_start(ends_away, detach=True)
    assert client.exec_inspect(finished)["ExitCode"] == 9
    pid = client.exec_inspect(running)["Pid"]
    client.close()
    daemon.kill9()
    time.sleep(1)                                        # ends_away ends while the daemon is gone
    assert os.path.exists(f"/proc/{pid}")                # the exec outlives the daemon
    daemon.start()
    client = docker.APIClient(base_url=daemon.host, version="1.45", timeout=30)
    try:
        assert client.exec_inspect(finished)["ExitCode"] == 9          # answered from the log
        assert client.exec_inspect(ends_away) == {**client.exec_inspect(ends_away), "Running": False, "ExitCode": 5}
        info = client.exec_inspect(running)
        assert info["Running"] is True and info["ExitCode"] is None
        assert until(lambda: client.exec_inspect(running)["ExitCode"] is not None, timeout=15)
        assert client.exec_inspect(running)["ExitCode"] == 7
        e = client.exec_create(cid, ["cat", marker])["Id"]
        assert client.exec_start(e) == b"done\n"                        # it ran to its end
        assert until(lambda: not exec_conmons(daemon.data_root))       # nothing left behind
        dies = [json.loads(line) for line in daemon.cli(
            "events", "--since", "0", "--until", "0s", "--filter", "event=exec_die", "--format", "{{json .}}",
            check=True).stdout.splitlines()]
        codes = {d["Actor"]["Attributes"]["execID"]: d["Actor"]["Attributes"]["exitCode"] for d in dies}
        assert codes[running] == "7" and codes[ends_away] == "5" and codes[finished] == "9"
        client.remove_container(cid, force=True)
    finally:
        client.close()


@pytest.mark.parametrize("how", ["rm -f", "stop"])
def test_a_running_exec_ends_with_its_container(daemon, busybox, how):
    """The container goes (rm -f) or stops while an exec runs in it: the exec's process dies with the
    container, its exit is recorded, and no exec conmon is left."""
    client = docker.APIClient(base_url=daemon.host, version="1.45", timeout=30)
    try:
        cid = client.create_container("busybox", "sleep 60")["Id"]
        client.start(cid)
        eid = client.exec_create(cid, ["sleep", "60"])["Id"]
        client.exec_start(eid, detach=True)
        assert until(lambda: client.exec_inspect(eid)["Running"])
        pid = client.exec_inspect(eid)["Pid"]
        if how == "rm -f":
            client.remove_container(cid, force=True)
            with pytest.raises(docker.errors.NotFound):
                client.exec_inspect(eid)                 # an exec goes with its container, as moby
        else:
            client.stop(cid, timeout=1)
            assert until(lambda: client.exec_inspect(eid)["ExitCode"] is not None, timeout=15)
            assert client.exec_inspect(eid)["Running"] is False
            client.remove_container(cid, force=True)
        assert until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15)
        assert until(lambda: not exec_conmons(daemon.data_root), timeout=15)
    finally:
        client.close()
