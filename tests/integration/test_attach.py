"""Attach over hijacked connections: foreground run, -i, -t, start -a, detach keys, logs replay.

Driven by the docker CLI (when installed), our CLI and docker-py against a real daemon, real runc.
"""
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

import docker
import pytest

from tests.integration.conftest import CLI, DOCKER_BIN, ROOT, needs_docker_cli, until

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


def docker_env(daemon):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = os.path.join(daemon.base, "docker-config")
    env["DOCKER_HOST"] = daemon.host
    return env


def run_piped(argv, stdin: bytes, env=None, timeout=30):
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, env=env, cwd=ROOT)


def run_in_pty(argv, typed: bytes, env=None, timeout=20, rows=33, cols=120, until=None, then=None):
    """Run argv with a pseudo-terminal as its stdin/stdout/stderr; type `typed`; return (output, rc).
    With `until`, stop reading once that text appeared and return rc None if the process still runs.
    `then` = (seen, more): type `more` once `seen` was output (control keys need the raw mode the
    client sets up first; the cooked terminal would swallow ctrl-q)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    os.write(master, typed)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
                if then and then[0] in out:
                    os.write(master, then[1])
                    then = None
                if until and until in out:
                    break
            elif proc.poll() is not None:
                break
        try:
            return out, proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return out, None
    finally:
        os.close(master)


def our_cli(daemon):
    return [sys.executable, CLI, "-H", daemon.host]


# ------------------------------------------------------------------------------------------ docker CLI

@needs_docker_cli
def test_docker_cli_foreground_run_streams_and_exit_code(daemon, busybox):
    env = docker_env(daemon)
    r = run_piped([DOCKER_BIN, "run", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
                  b"", env)
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    r = run_piped([DOCKER_BIN, "run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2"],
                  b"", env)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"err\n")
    r = run_piped([DOCKER_BIN, "run", "--rm", "busybox", "nonexistent-binary"], b"", env)
    assert r.returncode == 127 and b"executable file not found" in r.stderr
    events = daemon.cli("events", "--until", "0s", "--filter", "container=fg", "--format", "{{.Action}}",
                        check=True).stdout.split()
    assert events[:3] == ["create", "attach", "start"] and events[3].startswith("die")


@needs_docker_cli
def test_docker_cli_interactive_stdin_and_eof(daemon, busybox):
    env = docker_env(daemon)
    r = run_piped([DOCKER_BIN, "run", "-i", "--rm", "busybox", "sh", "-c", "read x; echo got $x; exit 4"],
                  b"hello\n", env)
    assert (r.returncode, r.stdout) == (4, b"got hello\n")
    payload = os.urandom(300_000).hex().encode()          # larger than any pipe or packet buffer
    r = run_piped([DOCKER_BIN, "run", "-i", "--rm", "busybox", "sh", "-c", "cat | md5sum"], payload, env)
    import hashlib
    assert r.returncode == 0 and r.stdout.split()[0].decode() == hashlib.md5(payload).hexdigest()
    r = run_piped([DOCKER_BIN, "run", "-i", "--rm", "busybox", "od", "-An", "-tx1"], b"a\x10\x11b\n", env)
    assert r.stdout.split() == [b"61", b"10", b"11", b"62", b"0a"]      # no TTY: detach keys are plain data


@needs_docker_cli
def test_docker_cli_tty_size_input_and_detach(daemon, busybox):
    env = docker_env(daemon)
    out, rc = run_in_pty([DOCKER_BIN, "run", "--rm", "-it", "busybox", "sh", "-c",
                          "read x; eval $x; tty; stty size; exit 6"], b"echo typed-$((40+2))\n", env)
    assert rc == 6 and b"typed-42\r\n/dev/pts/0\r\n33 120\r\n" in out
    out, rc = run_in_pty([DOCKER_BIN, "run", "--name", "bg", "-it", "busybox", "sh"],
                         b"echo ready-$((1+1))\n", env, until=b"ready-2")
    assert b"ready-2" in out
    out, rc = run_in_pty([DOCKER_BIN, "attach", "bg"], b"echo attached-$((2+2))\n", env, timeout=10,
                         then=(b"attached-4", b"\x10\x11"))
    assert rc is not None and b"read escape sequence" in out      # the CLI ends; the container runs on
    info = json.loads(daemon.cli("inspect", "bg", check=True).stdout)[0]
    assert info["State"]["Running"] is True
    ids = subprocess.run([DOCKER_BIN, "ps", "-aq"], capture_output=True, text=True, env=env).stdout.split()
    assert info["Id"][:12] in ids
    r = subprocess.run([DOCKER_BIN, "rm", "-f", *ids], capture_output=True, text=True, env=env)   # rm $(ps -aq)
    assert r.returncode == 0 and r.stdout.split() == ids
    assert subprocess.run([DOCKER_BIN, "ps", "-aq"], capture_output=True, text=True, env=env).stdout == ""


# ------------------------------------------------------------------------------------------ our CLI

def test_our_cli_foreground_run_interactive_and_start_attach(daemon, busybox):
    r = run_piped(our_cli(daemon) + ["run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"], b"")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    r = run_piped(our_cli(daemon) + ["run", "--rm", "-i", "busybox", "sh", "-c", "read x; echo got $x"],
                  b"hello\n")
    assert (r.returncode, r.stdout) == (0, b"got hello\n")
    r = run_piped(our_cli(daemon) + ["run", "--rm", "-a", "STDOUT", "busybox", "sh", "-c",
                                     "echo out; echo err >&2"], b"")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"out\n", b"")
    r = run_piped(our_cli(daemon) + ["run", "-a", "nope", "busybox", "true"], b"")
    assert r.returncode == 125 and b"valid streams are STDIN, STDOUT and STDERR" in r.stderr
    cid = daemon.cli("create", "--name", "later", "busybox", "sh", "-c", "echo again; exit 2",
                     check=True).stdout.strip()
    for _ in range(2):                                      # start -a works on created and exited containers
        r = run_piped(our_cli(daemon) + ["start", "-a", cid], b"")
        assert (r.returncode, r.stdout) == (2, b"again\n")
    out, rc = run_in_pty(our_cli(daemon) + ["run", "--rm", "-it", "busybox", "sh", "-c",
                                            "read x; eval $x; stty size; exit 6"], b"echo typed-$((40+2))\n")
    assert rc == 6 and b"typed-42\r\n33 120\r\n" in out
    assert daemon.cli("ps", "-aq", "--filter", "name=later", check=True).stdout.strip() == cid[:12]


# ------------------------------------------------------------------------------------------ docker-py

def test_docker_py_attach_stream_logs_and_socket(docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.5; echo two >&2; sleep 0.3"],
                                     detach=True)
    chunks = list(c.attach(stdout=True, stderr=True, stream=True, logs=True))
    assert b"".join(chunks) == b"one\ntwo\n"
    assert c.wait()["StatusCode"] == 0
    assert c.attach(stdout=True, stderr=True, stream=False, logs=True) == b"one\ntwo\n"
    assert c.attach(stdout=False, stderr=True, stream=False, logs=True) == b"two\n"

    api = docker_client.api
    cid = api.create_container("busybox", ["sh", "-c", "read x; echo got $x; read y; echo and $y"],
                               stdin_open=True)["Id"]
    api.start(cid)
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
    raw = sock._sock
    raw.sendall(b"first\n")
    raw.sendall(b"second\n")
    data = b""
    raw.settimeout(10)
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    frames = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        frames.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    assert b"".join(d for _, d in frames) == b"got first\nand second\n" and {s for s, _ in frames} == {1}
    sock.close()
    assert api.wait(cid)["StatusCode"] == 0


def test_detach_keys_leave_the_container_running(daemon, docker_client, busybox):
    api = docker_client.api
    cid = api.create_container("busybox", ["cat"], stdin_open=True, tty=True)["Id"]
    api.start(cid)
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,y"})
    raw = sock._sock
    raw.settimeout(10)
    raw.sendall(b"ping\n")
    seen = b""
    while b"ping" not in seen.replace(b"\r", b""):
        seen += raw.recv(4096)
    raw.sendall(b"\x18y")                                  # ctrl-x, y
    while raw.recv(4096):
        pass                                                # the daemon ends the stream
    sock.close()
    assert api.inspect_container(cid)["State"]["Running"] is True
    api.resize(cid, 40, 100)
    with pytest.raises(docker.errors.APIError) as err:
        api.attach_socket(cid, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-xx"})
    assert err.value.response.status_code == 400 and "Invalid detach keys" in str(err.value)
    actions = daemon.cli("events", "--until", "0s", "--filter", f"container={cid}", "--format", "{{.Action}}",
                         check=True).stdout.split()
    assert "detach" in actions and actions.count("attach") == 1


def test_attach_waiting_for_start_ends_when_container_is_removed(daemon, docker_client, busybox):
    api = docker_client.api
    cid = api.create_container("busybox", ["true"])["Id"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(daemon.host[len("unix://"):])
    sock.sendall(f"POST /v1.45/containers/{cid}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                 "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    sock.settimeout(10)
    head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED") and b"multiplexed-stream" in head
    api.remove_container(cid)
    assert sock.recv(4096) == b""                           # the waiting attach is released
    sock.close()


@needs_docker_cli
def test_docker_cli_lifecycle_commands(daemon, busybox, tmp_path):
    env = docker_env(daemon)

    def dk(*args, ok=True):
        r = subprocess.run([DOCKER_BIN, *args], capture_output=True, text=True, env=env, timeout=30)
        if ok:
            assert r.returncode == 0, (args, r.stderr)
        return r

    cid = dk("create", "--name", "lc", "--stop-timeout", "1", "busybox", "sh", "-c",
             "echo a; echo b; echo x > /made; exec sleep 30").stdout.strip()
    assert dk("start", "lc").stdout == "lc\n"
    dk("pause", "lc")
    assert "(Paused)" in dk("ps", "--filter", "name=lc").stdout
    dk("unpause", "lc")
    dk("rename", "lc", "lc2")
    until(lambda: dk("logs", "lc2").stdout == "a\nb\n")
    assert dk("logs", "--tail", "1", "lc2").stdout == "b\n"
    top = dk("top", "lc2").stdout
    assert "sleep 30" in top and top.split()[:2] == ["UID", "PID"]
    assert "A /made" in dk("diff", "lc2").stdout.splitlines()
    dk("export", "-o", str(tmp_path / "lc.tar"), "lc2")
    import tarfile
    with tarfile.open(tmp_path / "lc.tar") as tar:
        assert "made" in tar.getnames() or "./made" in tar.getnames()
    assert dk("restart", "-t", "1", "lc2").stdout == "lc2\n"
    assert dk("inspect", "-f", "{{.State.Running}} {{.RestartCount}} {{.Name}}", "lc2").stdout.split()[:1] == ["true"]
    assert dk("kill", "-s", "TERM", "lc2").stdout == "lc2\n"      # sleep as pid 1 ignores TERM
    assert dk("kill", "lc2").stdout == "lc2\n"
    assert dk("wait", "lc2").stdout == "137\n"
    dk("create", "--name", "sa", "busybox", "sh", "-c", "echo hi; echo oops >&2; exit 4")
    r = dk("start", "-a", "sa", ok=False)
    assert (r.returncode, r.stdout, r.stderr) == (4, "hi\n", "oops\n")
    r = dk("logs", "-f", "-t", "sa")                             # follows, then ends: the container has exited
    assert r.stdout.endswith("Z hi\n") and r.stderr.endswith("Z oops\n")
    dk("rm", "-f", cid, "sa")
    stopped = dk("create", "busybox", "true").stdout.strip()
    r = dk("container", "prune", "-f")
    assert "Deleted Containers:" in r.stdout and stopped in r.stdout and "Total reclaimed space:" in r.stdout
    assert dk("ps", "-aq").stdout == ""


def test_attach_and_stdin_survive_a_daemon_kill9(make_daemon, busybox_tar):
    """conmon keeps the container's stdio: a daemon started after a kill -9 attaches to it again."""
    d = make_daemon().start()
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    api = docker.APIClient(base_url=d.host, version="1.45", timeout=20)
    try:
        cid = api.create_container("busybox", ["sh", "-c", "echo first; read x; echo got $x; exit 3"],
                                   stdin_open=True)["Id"]
        api.start(cid)
        d.kill9()
        d.start()
        sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1, "logs": 1})
        raw = sock._sock
        raw.settimeout(15)
        raw.sendall(b"again\n")
        data = b""
        while chunk := raw.recv(4096):
            data += chunk
        sock.close()
        payload = b""
        while data:
            size = struct.unpack(">BxxxL", data[:8])[1]
            payload, data = payload + data[8:8 + size], data[8 + size:]
        assert payload == b"first\ngot again\n"
        assert api.wait(cid, timeout=15)["StatusCode"] == 3
        api.remove_container(cid)
    finally:
        api.close()
        if d.proc.poll() is None:
            from tests.integration.conftest import remove_all_containers
            remove_all_containers(d)
        d.stop()


def test_our_cli_proxies_signals_to_a_foreground_container(daemon, busybox):
    proc = subprocess.Popen(our_cli(daemon) + ["run", "--rm", "busybox", "sh", "-c",
                                               "trap 'echo got-int; exit 7' INT; echo ready; "
                                               "while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(2)                                  # Ctrl-C reaches the container's trap
        out, err = proc.communicate(timeout=15)
        assert (proc.returncode, out) == (7, b"got-int\n"), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_shutdown_ends_attach_streams_including_log_followers(make_daemon, busybox_tar):
    d = make_daemon().start()
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    api = docker.APIClient(base_url=d.host, version="1.45", timeout=20)
    socks = []
    try:
        cid = api.create_container("busybox", ["sh", "-c", "echo hi; exec sleep 30"])["Id"]
        api.start(cid)
        for params in ({"stdout": 1, "stream": 1}, {"stdout": 1, "stream": 1, "logs": 1}):
            socks.append(api.attach_socket(cid, params=params))
        started = time.monotonic()
        assert d.stop() == 0 and time.monotonic() - started < 8      # no stream holds the daemon
        for sock in socks:
            sock._sock.settimeout(5)
            while sock._sock.recv(4096):
                pass                                                 # each stream ended (EOF)
        d.start()
        api.remove_container(cid, force=True)
    finally:
        for sock in socks:
            sock.close()
        api.close()
        if d.proc.poll() is None:
            d.stop()


def test_our_cli_exits_0_after_detaching_from_run_it(daemon, busybox):
    out, rc = run_in_pty(our_cli(daemon) + ["run", "--name", "det", "-it", "busybox", "sh"],
                         b"echo in-$((3+4))\n", timeout=15, then=(b"in-7", b"\x10\x11"))
    assert rc == 0 and b"in-7" in out, out
    info = json.loads(daemon.cli("inspect", "det", check=True).stdout)[0]
    assert info["State"]["Running"] is True
    daemon.cli("rm", "-f", "det", check=True)


def test_an_output_only_attach_leaving_does_not_close_stdin_once(daemon, docker_client, busybox):
    """One conmon connection per container: a watcher that disconnects cannot EOF the stdin that
    another client attached (`docker run -i` plus a `docker attach --no-stdin` that is closed)."""
    api = docker_client.api
    r = api._post_json(api._url("/containers/create"), data={      # docker-py has no StdinOnce argument
        "Image": "busybox", "Cmd": ["sh", "-c", "sleep 0.5; echo ready; read x; echo got $x"],
        "OpenStdin": True, "StdinOnce": True, "AttachStdin": True, "AttachStdout": True})
    cid = api._result(r, True)["Id"]
    api.start(cid)
    writer = socket.socket(socket.AF_UNIX)
    watcher = socket.socket(socket.AF_UNIX)
    for sock, query in ((writer, "stdin=1&stdout=1&stream=1"), (watcher, "stdout=1&stream=1")):
        sock.connect(daemon.sock)
        sock.settimeout(10)
        sock.sendall(f"POST /v1.45/containers/{cid}/attach?{query} HTTP/1.1\r\nHost: x\r\n"
                     "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    watcher.recv(4096)
    watcher.close()                          # leaves before the output: its relay fails on "ready"
    data = writer.recv(4096)
    while b"ready" not in data:
        data += writer.recv(4096)
    time.sleep(0.3)                          # the watcher's relay has ended by now
    writer.sendall(b"hello\n")
    while chunk := writer.recv(4096):
        data += chunk
    writer.close()
    assert data.endswith(b"got hello\n"), data
    assert api.wait(cid)["StatusCode"] == 0


def test_our_cli_passes_terminal_size_changes_on(daemon, busybox):
    """`run -it`: a SIGWINCH after a change of our terminal's size resizes the container's (docker CLI)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 120, 0, 0))
    proc = subprocess.Popen(our_cli(daemon) + ["run", "--rm", "-it", "busybox", "sh"], stdin=slave, stdout=slave,
                            stderr=slave, cwd=ROOT)
    os.close(slave)

    def read_until(text: bytes, timeout: float = 15) -> bytes:
        out, deadline = b"", time.monotonic() + timeout
        while text not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 4096)
        return out

    try:
        os.write(master, b"stty size; echo first-$((1+1))\n")
        assert b"33 120" in read_until(b"first-2")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        proc.send_signal(signal.SIGWINCH)      # our terminal is not its controlling one: signal by hand
        deadline, out = time.monotonic() + 10, b""
        while b"40 100" not in out and time.monotonic() < deadline:
            os.write(master, b"stty size; echo again-$((2+2))\n")
            out += read_until(b"again-4", 5)
        assert b"40 100" in out
        os.write(master, b"exit 5\n")
        assert proc.wait(15) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
