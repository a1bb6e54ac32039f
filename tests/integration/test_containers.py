"""Containers under runc and conmon, driven by docker-py against a real daemon."""
import os
import shutil
import time

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli, until

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


def test_run_foreground_returns_output_and_exit_errors(docker_client, busybox):
    out = docker_client.containers.run("busybox", ["sh", "-c", "echo hello; echo err >&2"])
    assert out == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as err:
        docker_client.containers.run("busybox", ["sh", "-c", "exit 3"])
    assert err.value.exit_status == 3


def test_detached_lifecycle_stop_kill_remove(docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sleep", "30"], detach=True, name="sleeper")
    c.reload()
    assert c.status == "running" and c.name == "sleeper" and c.attrs["State"]["Pid"] > 0
    assert [x.name for x in docker_client.containers.list()] == ["sleeper"]
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], name="sleeper")
    assert err.value.response.status_code == 409 and "is already in use" in str(err.value)
    started = time.monotonic()
    c.stop(timeout=1)                      # sleep ignores SIGTERM as pid 1: killed after 1 s
    assert 0.9 < time.monotonic() - started < 8
    assert c.wait()["StatusCode"] == 137
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    c.start()
    c.reload()
    assert c.status == "running"
    with pytest.raises(docker.errors.APIError) as err:
        c.remove()
    assert err.value.response.status_code == 409 and "container is running" in str(err.value)
    c.remove(force=True)
    assert docker_client.containers.list(all=True) == []


def test_kill_signal_logs_and_errors(docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sh", "-c", "trap 'echo got-term; exit 9' TERM; echo up; "
                                                 "while true; do sleep 0.1; done"], detach=True)
    until(lambda: b"up" in c.logs())
    c.kill(signal="SIGTERM")
    assert c.wait(timeout=10)["StatusCode"] == 9
    assert c.logs() == b"up\ngot-term\n"
    assert c.logs(tail=1) == b"got-term\n"
    with pytest.raises(docker.errors.APIError) as err:
        c.kill(signal="NOPE")
    assert err.value.response.status_code in (400, 409)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.containers.create("nosuchimage", ["true"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("nosuchcontainer")
    c.remove()


def test_containers_survive_a_daemon_kill9(make_daemon, busybox_tar):
    d = make_daemon().start()
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    client = docker.DockerClient(base_url=d.host, version="1.45")
    try:
        c = client.containers.run("busybox", ["sh", "-c", "sleep 2; exit 4"], detach=True)
        d.kill9()
        d.start()
        c.reload()
        assert c.status == "running"                        # still alive and still managed
        assert c.wait(timeout=20)["StatusCode"] == 4         # its exit code was observed after restart
        client.containers.run("busybox", ["sleep", "30"], detach=True, name="left-running")
        d.kill9()
        d.start()
        client.containers.get("left-running").remove(force=True)
        c.remove()
    finally:
        client.close()
        if d.proc.poll() is None:
            from tests.integration.conftest import remove_all_containers
            remove_all_containers(d)
        d.stop()


@needs_docker_cli
def test_docker_cli_detached_run_ps_logs_stop_rm(daemon, busybox):
    r = docker_cli(daemon, "run", "-d", "--name", "web", "busybox", "sh", "-c", "echo ready; exec sleep 30")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    r = docker_cli(daemon, "ps")
    assert r.returncode == 0 and "web" in r.stdout and cid[:12] in r.stdout and "Up " in r.stdout, r.stdout + r.stderr
    until(lambda: "ready" in docker_cli(daemon, "logs", "web").stdout)
    assert docker_cli(daemon, "logs", "web").stdout == "ready\n"
    r = docker_cli(daemon, "inspect", "-f", "{{.State.Status}} {{.Name}} {{.Config.Image}}", "web")
    assert r.stdout.strip() == "running /web busybox", r.stderr
    assert docker_cli(daemon, "stop", "-t", "1", "web").returncode == 0
    r = docker_cli(daemon, "ps", "-a", "--format", "{{.Names}} {{.Status}}")
    assert r.stdout.startswith("web Exited (137)"), r.stdout
    r = docker_cli(daemon, "rm", "web")
    assert r.returncode == 0 and r.stdout.strip() == "web"
    r = docker_cli(daemon, "rm", "web")
    assert r.returncode == 1 and "No such container: web" in r.stderr


def test_our_cli_container_commands(daemon, busybox, workdir):
    import os
    r = daemon.cli("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = daemon.cli("run", "--rm", "-e", "A=1", "-h", "box", "-u", "nobody", "-w", "/tmp", "busybox",
                   "sh", "-c", "echo $A $(hostname) $(id -u) $(pwd)")
    assert (r.returncode, r.stdout) == (0, "1 box 65534 /tmp\n"), r.stderr
    envfile = os.path.join(workdir, "env")
    with open(envfile, "w") as fh:
        fh.write("# comment\nB=2\n")
    r = daemon.cli("run", "-d", "--name", "bg", "--env-file", envfile, "-m", "64m", "--pids-limit", "50",
                   "busybox", "sh", "-c", "echo $B; exec sleep 30")
    assert r.returncode == 0 and len(r.stdout.strip()) == 64
    r = daemon.cli("ps", check=True)
    assert r.stdout.splitlines()[0].split()[:2] == ["CONTAINER", "ID"] and " bg" in r.stdout
    assert daemon.cli("ps", "-q", check=True).stdout.strip() == r.stdout.splitlines()[1].split()[0]
    assert daemon.cli("ps", "--format", "{{.Names}} {{.State}}", check=True).stdout == "bg running\n"
    until(lambda: daemon.cli("logs", "bg").stdout == "2\n")
    assert daemon.cli("logs", "-t", "bg", check=True).stdout.endswith("Z 2\n")
    assert daemon.cli("stop", "-t", "1", "bg", check=True).stdout == "bg\n"
    assert daemon.cli("wait", "bg", check=True).stdout == "137\n"
    assert daemon.cli("start", "bg", check=True).stdout == "bg\n"
    assert daemon.cli("kill", "-s", "KILL", "bg", check=True).stdout == "bg\n"
    assert daemon.cli("rm", "bg", check=True).stdout == "bg\n"
    r = daemon.cli("rm", "bg")
    assert r.returncode == 1 and "No such container: bg" in r.stderr
    assert daemon.cli("ps", "-a", "-q", check=True).stdout.count("\n") == 1   # the exit-3 container
    # run error codes, as the docker CLI maps them
    assert daemon.cli("run", "nosuchimage").returncode == 125
    assert daemon.cli("run", "busybox", "/no/such/cmd").returncode == 127
    assert daemon.cli("run", "-m", "1k", "busybox", "true").returncode == 125
    r = daemon.cli("run", "--env-file", "/nonexistent", "busybox", "true")
    assert r.returncode == 125 and "nonexistent" in r.stderr


def test_lifecycle_events_in_docker_shape(daemon, busybox):
    since = f"{time.time():.6f}"
    daemon.cli("run", "-d", "--name", "ev", "-l", "team=a", "busybox", "sleep", "30", check=True)
    daemon.cli("stop", "-t", "0", "ev", check=True)
    daemon.cli("rm", "ev", check=True)
    r = daemon.cli("events", "--since", since, "--until", f"{time.time():.6f}", "--filter", "container=ev",
                   "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.team}} {{.From}}",
                   check=True)
    lines = r.stdout.splitlines()
    # sleep as pid 1 ignores TERM, so stop -t 0 sends TERM, then KILL
    assert [line.split()[0] for line in lines] == ["create", "start", "kill", "kill", "die", "stop", "destroy"], lines
    assert all(line.split()[1:] == ["ev", "a", "busybox"] for line in lines)
    r = daemon.cli("events", "--since", since, "--until", f"{time.time():.6f}", "--filter", "event=die",
                   "--format", "{{.Actor.Attributes.exitCode}}", check=True)
    assert r.stdout.strip() == "137"
    r = daemon.cli("events", "--since", since, "--until", f"{time.time():.6f}", "--filter", "event=kill",
                   "--format", "{{.Actor.Attributes.signal}}", check=True)
    assert r.stdout.split() == ["15", "9"]


def test_pause_unpause_rename_restart(docker_client, daemon, busybox):
    c = docker_client.containers.run("busybox", ["sh", "-c", "while true; do date +%s%N >> /tmp/t; sleep 0.05; done"],
                                     detach=True, name="p1")
    c.pause()
    c.reload()
    assert c.status == "paused" and c.attrs["State"]["Paused"] is True
    assert "(Paused)" in daemon.cli("ps", check=True).stdout
    with pytest.raises(docker.errors.APIError) as err:
        c.pause()
    assert err.value.response.status_code == 409 and "is already paused" in str(err.value)
    assert daemon.cli("unpause", "p1", check=True).stdout == "p1\n"
    with pytest.raises(docker.errors.APIError) as err:
        c.unpause()
    assert err.value.response.status_code == 409 and "is not paused" in str(err.value)
    c.rename("p2")
    c.reload()
    assert c.name == "p2"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("p1")
    pid = c.attrs["State"]["Pid"]
    assert daemon.cli("restart", "-t", "1", "p2", check=True).stdout == "p2\n"
    c.reload()
    assert c.status == "running" and c.attrs["State"]["Pid"] != pid
    daemon.cli("rename", "p2", "p3", check=True)
    assert daemon.cli("ps", "--format", "{{.Names}}", check=True).stdout == "p3\n"
    c.remove(force=True)


def test_top_and_diff(docker_client, daemon, busybox):
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo x > /NEW-FILE; rm /bin/ls; echo y >> /etc/passwd;"
                                                 " exec sleep 30"], detach=True, name="td")
    until(lambda: any("sleep 30" in " ".join(p) for p in c.top()["Processes"]))   # changes made, sleep exec'd
    top = c.top()
    assert "PID" in top["Titles"] and any("sleep 30" in " ".join(p) for p in top["Processes"])
    assert len(top["Processes"]) == 1
    out = daemon.cli("top", "td", check=True).stdout
    assert "sleep 30" in out and out.splitlines()[0].split()[:2] == ["UID", "PID"]
    changes = {(d["Kind"], d["Path"]) for d in c.diff()}
    assert changes == {(1, "/NEW-FILE"), (2, "/bin/ls"), (0, "/etc/passwd"), (0, "/etc"), (0, "/bin")}
    quiet = docker_client.containers.run("busybox", ["sleep", "30"], detach=True)
    assert quiet.diff() is None or quiet.diff() == []      # mount points runc made are not changes
    quiet.remove(force=True)
    diff = daemon.cli("diff", "td", check=True).stdout.splitlines()
    assert "A /NEW-FILE" in diff and "D /bin/ls" in diff and "C /etc/passwd" in diff
    c.stop(timeout=0)
    with pytest.raises(docker.errors.APIError) as err:
        c.top()
    assert err.value.response.status_code == 409
    assert "A /NEW-FILE" in daemon.cli("diff", "td", check=True).stdout   # the upper dir outlives the run
    c.remove()


def test_export(docker_client, daemon, busybox, workdir):
    import os
    import tarfile
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo hi > /NEW-FILE; rm /bin/ls"], detach=True,
                                     name="ex")
    assert c.wait()["StatusCode"] == 0
    path = os.path.join(workdir, "ex.tar")
    daemon.cli("export", "-o", path, "ex", check=True)
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("NEW-FILE").read() == b"hi\n"
    assert "bin/busybox" in names and "bin/sh" in names and "bin/ls" not in names
    assert not any(n.startswith(".wh.") or "/.wh." in n for n in names)
    data = b"".join(c.export())
    assert len(data) > 1_000_000
    c.remove()


def test_memory_limit_oom_is_visible(docker_client, daemon, busybox):
    c = docker_client.containers.run("busybox", ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
                                     detach=True, mem_limit="32m", memswap_limit="32m", pids_limit=20)
    assert c.wait(timeout=30)["StatusCode"] == 137
    c.reload()
    assert c.attrs["State"]["OOMKilled"] is True
    assert c.attrs["HostConfig"]["Memory"] == 32 << 20
    r = daemon.cli("events", "--since", "0", "--until", f"{time.time():.6f}", "--filter", "event=oom",
                   "--format", "{{.Actor.ID}}", check=True)
    assert r.stdout.strip() == c.id
    c.remove()
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], mem_limit="1m")
    assert err.value.response.status_code == 400 and "Minimum memory limit allowed is 6MB" in str(err.value)


def test_twenty_parallel_run_and_force_remove(daemon, busybox):
    import threading
    errors, ids = [], []

    def worker(i):
        client = docker.DockerClient(base_url=daemon.host, version="1.45", timeout=120)
        try:
            c = client.containers.run("busybox", ["sleep", "30"], detach=True, name=f"par{i}")
            ids.append(c.id)
            c.remove(force=True)
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(err))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(set(ids)) == 20
    r = daemon.cli("events", "--since", "0", "--until", f"{time.time():.6f}", "--filter", "type=container",
                   "--format", "{{.Action}}", check=True)
    actions = r.stdout.split()
    assert actions.count("create") == actions.count("start") == actions.count("destroy") == 20
    assert actions.count("die") == 20
    assert daemon.cli("ps", "-a", "-q", check=True).stdout == ""


def test_auto_remove(docker_client, daemon, busybox):
    c = docker_client.containers.create("busybox", ["sh", "-c", "exit 6"], auto_remove=True, name="gone")
    waiter = docker_client.api.wait  # registered before start, as `docker run --rm` does
    import threading
    result = {}
    t = threading.Thread(target=lambda: result.update(waiter(c.id, condition="removed")))
    t.start()
    time.sleep(0.2)
    c.start()
    t.join(20)
    assert result["StatusCode"] == 6
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("gone")


@needs_docker_cli
def test_docker_cli_run_rm_detached(daemon, busybox):
    r = docker_cli(daemon, "run", "-d", "--rm", "--name", "tmp", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    assert docker_cli(daemon, "stop", "-t", "0", "tmp").returncode == 0
    until(lambda: "tmp" not in docker_cli(daemon, "ps", "-a").stdout)
    assert "tmp" not in docker_cli(daemon, "ps", "-a").stdout


def _zombie_children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_daemon_is_subreaper_and_reaps_conmon(daemon, docker_client, busybox):
    """conmon double-forks; the daemon (a child subreaper) inherits it and must leave no zombie."""
    c = docker_client.containers.run("busybox", ["sleep", "30"], detach=True)
    conmon_pid = int(open(os.path.join(daemon.data_root, "containers", c.id, "userdata", "conmon.pid")).read())
    with open(f"/proc/{conmon_pid}/stat") as fh:
        assert int(fh.read().rpartition(")")[2].split()[1]) == daemon.proc.pid
    c.kill()
    c.wait()
    with pytest.raises(docker.errors.APIError):
        docker_client.containers.run("busybox", ["nonexistent-binary"], detach=True)
    until(lambda: not _zombie_children(daemon.proc.pid), 5)
    assert _zombie_children(daemon.proc.pid) == []
    assert not os.path.exists(f"/proc/{conmon_pid}")


def test_stop_signal_stop_timeout_and_failed_start_state(daemon, docker_client, busybox):
    # --stop-signal: the container's own stop signal is used by `stop`
    c = docker_client.containers.run("busybox", ["sh", "-c", "trap 'echo got-usr1; exit 11' USR1; echo up; "
                                                 "while true; do sleep 0.1; done"], detach=True, stop_signal="SIGUSR1")
    until(lambda: b"up" in c.logs())
    c.stop(timeout=5)
    assert c.wait()["StatusCode"] == 11 and b"got-usr1" in c.logs()
    # --stop-timeout: the container's own grace period before SIGKILL
    r = daemon.cli("run", "-d", "--stop-timeout", "1", "busybox", "sleep", "30", check=True)
    cid = r.stdout.strip()
    started = time.monotonic()
    daemon.cli("stop", cid, check=True)
    assert 0.9 < time.monotonic() - started < 6
    assert docker_client.containers.get(cid).attrs["State"]["ExitCode"] == 137
    # a start the runtime refuses: State.Error and Docker's exit code, container left "created"
    bad = docker_client.containers.create("busybox", ["nonexistent-binary"])
    with pytest.raises(docker.errors.APIError):
        bad.start()
    bad.reload()
    assert bad.status == "created" and bad.attrs["State"]["ExitCode"] == 127
    assert "executable file not found" in bad.attrs["State"]["Error"]


def test_start_event_is_visible_before_run_detached_returns(daemon, busybox):
    """The start event is committed before `start` answers, so a replay right after `run -d` has it."""
    for _ in range(3):
        cid = daemon.cli("run", "-d", "busybox", "sleep", "5", check=True).stdout.strip()
        seen = daemon.cli("events", "--until", "0s", "--filter", f"container={cid}", "--filter", "event=start",
                          "--format", "{{.ID}}", check=True).stdout.split()
        assert seen == [cid]


def test_bad_input_clear_errors_and_nothing_half_made(daemon, busybox):
    """Each refused run: Docker's wording and exit code, and no row, bundle, mount, runc state or cgroup."""
    cases = [
        (["-u", "nosuchuser", "busybox", "true"], 125, "unable to find user nosuchuser"),
        (["-w", "/bin/sh", "busybox", "true"], 125, "not a directory"),
        (["busybox", "/etc/passwd"], 126, "permission denied"),
        (["busybox", "nonexistent-binary"], 127, "executable file not found"),
        (["--cpu-shares", "-5", "busybox", "true"], 125, "invalid CPU shares"),
        (["--cpus", "99", "busybox", "true"], 125, "Range of CPUs is from 0.01 to"),
        (["-m", "1k", "busybox", "true"], 125, "Minimum memory limit allowed is 6MB"),
        (["nosuchimage"], 125, "No such image"),
        (["-w", "tmp", "busybox", "true"], 125, "the working directory 'tmp' is invalid, it needs to be an absolute"),
        (["--stop-signal", "FOO", "busybox", "true"], 125, "Invalid signal: FOO"),
        (["-e", "=x", "busybox", "true"], 125, "invalid environment variable: =x"),
    ]
    for args, code, message in cases:
        r = daemon.cli("run", "--rm", *args)
        assert (r.returncode, message in r.stderr) == (code, True), (args, r.returncode, r.stderr)
    r = daemon.cli("kill", "-s", "NOPE", "whatever")       # moby parses the signal before the lookup
    assert r.returncode == 1 and "Invalid signal: NOPE" in r.stderr
    cid = daemon.cli("run", "-d", "busybox", "sleep", "30", check=True).stdout.strip()
    r = daemon.cli("kill", "-s", "NOPE", cid)
    assert r.returncode == 1 and "Invalid signal: NOPE" in r.stderr
    daemon.cli("rm", "-f", cid, check=True)
    assert daemon.cli("ps", "-aq", check=True).stdout == ""
    assert os.listdir(os.path.join(daemon.data_root, "containers")) == []
    assert os.listdir(os.path.join(daemon.data_root, "runc")) == []
    with open("/proc/mounts") as fh:
        assert daemon.data_root not in fh.read()
    for controller in ("memory", "pids", "cpu", "freezer"):
        path = os.path.join("/sys/fs/cgroup", controller, daemon.cgroup_parent)
        assert not os.path.isdir(path) or not [e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e))]
    assert daemon.cli("version", check=True).returncode == 0          # still serving


def test_restarted_container_keeps_running(daemon, docker_client, busybox):
    """Regression: the exit watcher saw the previous run's exit file and 'finished' the new run (255)."""
    c = docker_client.containers.run("busybox", ["sh", "-c", "while true; do sleep 0.05; done"], detach=True)
    for _ in range(4):
        c.restart(timeout=1)             # TERM is ignored (pid 1), SIGKILL after 1 s: the slow path raced
        time.sleep(0.3)
        c.reload()
        assert c.status == "running", c.attrs["State"]
    codes = daemon.cli("events", "--until", "0s", "--filter", f"container={c.id}", "--filter", "event=die",
                       "--format", "{{.Actor.Attributes.exitCode}}", check=True).stdout.split()
    assert codes == ["137"] * 4
    c.remove(force=True)


def test_stop_and_force_remove_of_paused_containers(docker_client, busybox):
    """A frozen process cannot act on a signal: stop and rm -f thaw it (as Docker does)."""
    c = docker_client.containers.run("busybox", ["sh", "-c", "trap 'exit 143' TERM; echo trapped; "
                                                 "while true; do sleep 0.05; done"], detach=True)
    until(lambda: b"trapped" in c.logs())
    c.pause()
    started = time.monotonic()
    c.stop(timeout=10)
    assert time.monotonic() - started < 5 and c.wait()["StatusCode"] == 143
    d = docker_client.containers.run("busybox", ["sleep", "30"], detach=True)
    d.pause()
    with pytest.raises(docker.errors.APIError) as err:
        d.remove()
    assert err.value.response.status_code == 409 and "paused and must be unpaused first" in str(err.value)
    d.remove(force=True)
    c.remove()
    assert docker_client.containers.list(all=True) == []


def test_force_remove_of_a_running_auto_remove_container(docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sleep", "30"], detach=True, auto_remove=True)
    c.remove(force=True)                       # AutoRemove finishes first; rm -f still succeeds (204)
    assert docker_client.containers.list(all=True) == []


def test_a_killed_conmon_ends_the_container_as_255_and_nothing_hangs(daemon, docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sleep", "30"], detach=True)
    with open(os.path.join(daemon.data_root, "containers", c.id, "userdata", "conmon.pid")) as fh:
        os.kill(int(fh.read()), 9)
    assert c.wait(timeout=10)["StatusCode"] == 255
    c.reload()
    assert c.status == "exited"
    until(lambda: not _zombie_children(daemon.proc.pid), 5)
    assert _zombie_children(daemon.proc.pid) == []        # the orphaned init was reaped too
    c.remove()


def test_waits_whose_clients_left_free_their_threads(make_daemon, busybox_tar):
    import socket as _socket
    d = make_daemon().start("--threads", "2")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        cid = d.cli("create", "busybox", "true", check=True).stdout.strip()
        for _ in range(3):                          # more abandoned waits than worker threads
            s = _socket.socket(_socket.AF_UNIX)
            s.connect(d.sock)
            s.sendall(f"POST /v1.45/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 0\r\n\r\n".encode())
            s.settimeout(5)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.close()
            time.sleep(0.5)                         # the wait notices within its poll interval
        assert d.cli("version", timeout=10).returncode == 0
        d.cli("rm", cid, check=True)
    finally:
        d.stop()


def test_logs_follow_since_until_timestamps_and_streams(daemon, docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo one; echo oops >&2; sleep 1; echo two; sleep 1; "
                                                 "echo three"], detach=True)
    followed = b"".join(c.logs(stream=True, follow=True))       # ends when the container exits
    assert followed == b"one\noops\ntwo\nthree\n"
    assert c.logs(stderr=False) == b"one\ntwo\nthree\n" and c.logs(stdout=False) == b"oops\n"
    stamped = c.logs(timestamps=True, stderr=False).decode().splitlines()
    times = [line.split(" ", 1)[0] for line in stamped]
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
    from datetime import datetime
    parsed = [datetime.fromisoformat(t[:26] + "+00:00") for t in times]   # RFC3339Nano, trimmed to µs
    middle = parsed[1].timestamp()
    assert c.logs(since=middle - 0.2, stderr=False) == b"two\nthree\n"
    assert c.logs(until=middle + 0.2, stderr=False) == b"one\ntwo\n"
    r = daemon.cli("logs", "--since", times[1], "--until", times[1], c.id, check=True)
    assert r.stdout == "two\n"                                   # both ends inclusive, as Docker
    assert daemon.cli("logs", "--tail", "2", c.id, check=True).stdout == "two\nthree\n"
    c.remove()


def test_docker_py_suite_findings_kill_groups_logconfig_runtime_key_case(docker_client, busybox):
    """What docker-py 7.1.0's own container tests found: kill waits for the exit, GroupAdd, LogConfig,
    HostConfig.Runtime, and Go's case-insensitive decoding of the create request."""
    c = docker_client.containers.run("busybox", ["sleep", "30"], detach=True)
    c.kill()
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137     # no wait needed after kill
    out = docker_client.containers.run("busybox", ["id", "-G"], group_add=[1000, "1001", "daemon"], remove=True)
    assert {"1000", "1001", "1"} <= set(out.decode().split())                # busybox's group daemon = 1
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.run("busybox", ["true"], group_add=["nosuchgroup"], remove=True)
    assert "Unable to find group nosuchgroup" in str(err.value)
    api = docker_client.api
    cid = api.create_container("busybox", ["true"], host_config=api.create_host_config(
        log_config={"Type": "", "Config": {}}))["Id"]
    host = api.inspect_container(cid)["HostConfig"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}} and host["Runtime"] == "runc"
    with pytest.raises(docker.errors.APIError) as err:
        api.create_container("busybox", ["true"], host_config=api.create_host_config(
            log_config={"Type": "asdf", "Config": {}}))
    assert err.value.response.status_code == 400 and "no log driver named 'asdf'" in str(err.value)
    r = api._post_json(api._url("/containers/create"), data={
        "image": "busybox", "cmd": ["true"], "Runtime": "x",
        "hostconfig": {"memory": 64 << 20, "CPUShares": 512}})
    odd = api._result(r, True)["Id"]
    info = api.inspect_container(odd)
    assert info["HostConfig"]["Memory"] == 64 << 20 and info["HostConfig"]["CpuShares"] == 512
    assert "Runtime" not in info["Config"] and info["Config"]["Cmd"] == ["true"]
    r = api._post_json(api._url("/containers/create"), data={       # a key berth does not apply: by name
        "image": "busybox", "hostconfig": {"CPURealtimeRuntime": 1000}})
    assert r.status_code == 400 and r.json()["message"] == "berth does not support HostConfig.CpuRealtimeRuntime yet"
    for ref in (c.id, cid, odd):
        api.remove_container(ref, force=True)


def test_none_log_driver_keeps_no_log(daemon, docker_client, busybox):
    out = docker_client.containers.run("busybox", ["echo", "hi"], log_config={"type": "none"}, remove=True)
    assert out is None                          # docker-py: nothing to read back, as with Docker
    c = docker_client.containers.run("busybox", ["echo", "hi"], log_config={"type": "none"}, detach=True)
    assert c.wait()["StatusCode"] == 0
    with pytest.raises(docker.errors.APIError) as err:
        c.logs()
    assert err.value.response.status_code == 501 and "does not support reading" in str(err.value)
    assert not os.path.exists(os.path.join(daemon.data_root, "containers", c.id, "userdata", "ctr.log"))
    c.remove()


def _cgroup_value(daemon, controller: str, cid: str, name: str) -> int:
    with open(os.path.join("/sys/fs/cgroup", controller, daemon.cgroup_parent, cid, name)) as fh:
        return int(fh.read())


def test_entrypoint_and_cpu_memory_limits_reach_runc(daemon, docker_client, busybox):
    """--entrypoint, --cpu-shares, --cpus, -m and --memory-swap from our CLI and docker-py, read back
    from the container's own cgroup files."""
    r = daemon.cli("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint", check=True)
    assert r.stdout == "from entrypoint\n"
    assert docker_client.containers.run("busybox", ["x"], entrypoint=["echo", "py"], remove=True) == b"py x\n"
    cid = daemon.cli("run", "-d", "--cpu-shares", "512", "--cpus", "0.5", "-m", "64m", "--memory-swap", "96m",
                     "busybox", "sleep", "30", check=True).stdout.strip()
    assert _cgroup_value(daemon, "cpu", cid, "cpu.shares") == 512
    assert _cgroup_value(daemon, "cpu", cid, "cpu.cfs_quota_us") * 2 == _cgroup_value(daemon, "cpu", cid,
                                                                                       "cpu.cfs_period_us")
    assert _cgroup_value(daemon, "memory", cid, "memory.limit_in_bytes") == 64 << 20
    if os.path.exists(os.path.join("/sys/fs/cgroup/memory", daemon.cgroup_parent, cid, "memory.memsw.limit_in_bytes")):
        assert _cgroup_value(daemon, "memory", cid, "memory.memsw.limit_in_bytes") == 96 << 20
    c = docker_client.containers.get(cid)
    assert c.attrs["HostConfig"]["CpuShares"] == 512 and c.attrs["HostConfig"]["NanoCpus"] == 500_000_000
    c.remove(force=True)


def test_domainname_and_an_unlimited_ulimit_are_applied(docker_client, busybox):
    """Config.Domainname sets the UTS domain name; a Ulimit of -1 is unlimited (go-units' uint64)."""
    out = docker_client.containers.run(
        "busybox", ["sh", "-c", "cat /proc/sys/kernel/domainname; ulimit -c"], domainname="example.test",
        ulimits=[docker.types.Ulimit(name="core", soft=-1, hard=-1)], remove=True)
    assert out.decode().split() == ["example.test", "unlimited"]


def test_dns_hosts_shm_oom_and_memory_settings_are_applied(docker_client, busybox):
    """Dns/DnsSearch/DnsOptions, ExtraHosts, ShmSize, OomScoreAdj and the memory cgroup settings reach
    the container: seen from inside it and in its cgroup."""
    c = docker_client.containers.run(
        "busybox", ["sleep", "30"], detach=True, dns=["10.9.8.7"], dns_search=["example.test"],
        dns_opt=["ndots:2"], extra_hosts={"db.local": "10.1.2.3"}, shm_size="8m", oom_score_adj=200,
        mem_limit="64m", mem_reservation="32m", mem_swappiness=10, oom_kill_disable=True)
    try:
        pid = docker_client.api.inspect_container(c.id)["State"]["Pid"]
        root = f"/proc/{pid}/root"
        with open(f"{root}/etc/resolv.conf") as fh:
            assert fh.read() == "nameserver 10.9.8.7\nsearch example.test\noptions ndots:2\n"
        with open(f"{root}/etc/hosts") as fh:
            assert "10.1.2.3\tdb.local\n" in fh.read()
        with open(f"/proc/{pid}/oom_score_adj") as fh:
            assert fh.read().strip() == "200"
        with open(f"/proc/{pid}/mountinfo") as fh:
            shm = next(line for line in fh if " /dev/shm " in line)
        assert "size=8192k" in shm
        with open(f"/proc/{pid}/cgroup") as fh:
            memcg = next(line.split(":")[2].strip() for line in fh if ":memory:" in line)
        base = f"/sys/fs/cgroup/memory{memcg}"
        values = {}
        for name in ("memory.soft_limit_in_bytes", "memory.swappiness", "memory.oom_control"):
            with open(f"{base}/{name}") as fh:
                values[name] = fh.read()
        assert int(values["memory.soft_limit_in_bytes"]) == 32 << 20
        assert values["memory.swappiness"].strip() == "10"
        assert "oom_kill_disable 1" in values["memory.oom_control"]
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.APIError, match=r"range for oom score adj is \[-1000, 1000\]"):
        docker_client.containers.create("busybox", ["true"], oom_score_adj=2000)
    with pytest.raises(docker.errors.APIError, match="valid memory swappiness range is 0-100"):
        docker_client.containers.create("busybox", ["true"], mem_swappiness=101)
    with pytest.raises(docker.errors.APIError, match="is not an ip address"):
        docker_client.containers.create("busybox", ["true"], dns=["nameserver"])
    assert docker_client.containers.list(all=True) == []


def test_start_with_a_vanished_image_layer_fails_cleanly(daemon, docker_client, busybox):
    """The start error boundary with real runc: the image's layer directory deleted on disk, then a
    start: a 500 whose JSON message names the missing layer, `start-failed` recorded, nothing on the
    host (mount, runc state, cgroup, conmon), and the daemon keeps serving."""
    import glob
    cid = docker_client.api.create_container("busybox", ["sleep", "30"])["Id"]
    layers = glob.glob(os.path.join(daemon.data_root, "image", "layers", "*", "diff"))
    assert layers
    for layer in layers:
        shutil.rmtree(layer)
    with pytest.raises(docker.errors.APIError) as failed:
        docker_client.api.start(cid)
    assert failed.value.response.status_code == 500
    message = failed.value.response.json()["message"]
    assert "image layer directory" in message and "is missing" in message, message
    state = docker_client.api.inspect_container(cid)["State"]
    assert state["Status"] == "created" and state["Error"] == message
    with open("/proc/mounts") as fh:
        assert daemon.data_root not in fh.read()
    assert os.listdir(os.path.join(daemon.data_root, "runc")) == []
    for controller in ("memory", "pids", "cpu", "freezer"):
        assert not os.path.isdir(os.path.join("/sys/fs/cgroup", controller, daemon.cgroup_parent, cid))
    conmons = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, cid)]
    assert conmons == []
    assert docker_client.ping()
    docker_client.api.remove_container(cid)
    assert docker_client.api.containers(all=True) == []


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return text.encode() in fh.read()
    except OSError:
        return False


def test_uts_and_cgroup_namespace_modes(docker_client, busybox):
    """--uts host shares the host's name; --cgroupns private gives the container a cgroup namespace
    of its own (its /proc/self/cgroup shows it at the root), host (the v1 default) does not."""
    import socket
    out = docker_client.containers.run("busybox", ["hostname"], uts_mode="host", remove=True)
    assert out.decode().strip() == socket.gethostname()
    with pytest.raises(docker.errors.APIError, match="conflicting options: hostname and the UTS mode"):
        docker_client.containers.create("busybox", ["true"], uts_mode="host", hostname="x")
    with pytest.raises(docker.errors.APIError, match="conflicting options: domainname and the UTS mode"):
        docker_client.containers.create("busybox", ["true"], uts_mode="host", domainname="example.org")
    with pytest.raises(docker.errors.APIError, match="invalid UTS mode: container:x"):     # docker-py checks
        docker_client.api.create_container("busybox", ["true"], host_config={"UTSMode": "container:x"})
    with pytest.raises(docker.errors.APIError, match="invalid cgroup namespace mode: nope"):
        docker_client.api.create_container("busybox", ["true"], host_config={"CgroupnsMode": "nope"})
    private = docker_client.containers.run("busybox", ["cat", "/proc/self/cgroup"], cgroupns="private",
                                           remove=True).decode()
    shared = docker_client.containers.run("busybox", ["cat", "/proc/self/cgroup"], remove=True).decode()
    assert all(line.endswith(":/") for line in private.splitlines() if line)
    assert any(not line.endswith(":/") for line in shared.splitlines() if line)
    c = docker_client.containers.create("busybox", ["true"])
    try:
        expected = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
        assert c.attrs["HostConfig"]["CgroupnsMode"] == expected          # moby's default, filled in
    finally:
        c.remove(force=True)
