"""Container lifecycle through the Flask test client, on the fake runtime (tests/fakes.py).

Fast coverage of the lifecycle logic, its status codes, Docker's messages, the events every action
appends and the projection rebuilt from them. The real runc + conmon behaviour is proven in
tests/integration; here the runtime is scripted by each container's command (see tests/fakes.py).
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import tarfile
import threading
import time
from urllib.parse import quote

import pytest

from app.projections import rebuild, snapshot
from tests.fakes import FakeHost, FakeProcess, Script

V = "/v1.45"


# ------------------------------------------------------------------------------------------ fixtures

def _image_tar() -> bytes:
    """A tiny image: the commands the fake runtime knows, /etc/passwd, a directory and a plain file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("bin", "etc", "data"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        files = {f"bin/{name}": (b"#!fake\n", 0o755)
                 for name in ("sh", "sleep", "true", "false", "echo", "exit", "ignore", "oom")}
        files["etc/passwd"] = (b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644)
        files["etc/group"] = (b"root:x:0:\nnogroup:x:65534:\n", 0o644)
        files["etc/motd"] = (b"not a program\n", 0o644)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def host():
    return FakeHost()


def _engine(data_root: str, fake: FakeHost):
    from app.config import Config
    from app.engine import Engine
    # a cgroup parent nobody creates: Containers.close() rmdirs it, and must not touch a real "berth"
    config = Config(data_root=data_root, cgroup_parent="berth-fake")
    return Engine(config, host=fake.host(data_root, config.cgroup_parent)).start()


@pytest.fixture
def fake_engine(tmp_path, host):
    eng = _engine(str(tmp_path / "root"), host)
    yield eng
    eng.close()


@pytest.fixture
def fake_api(fake_engine):
    from app import create_app
    return create_app(fake_engine.config, fake_engine).test_client()


@pytest.fixture
def image(fake_api):
    changes = "&".join("changes=" + quote(c) for c in ('CMD ["sleep", "300"]', "LABEL from.image=yes"))
    r = fake_api.post(f"{V}/images/create?fromSrc=-&repo=busybox:latest&{changes}", data=_image_tar())
    assert r.status_code == 200, r.data
    return json.loads(r.data.decode().strip().splitlines()[-1])["status"]


# ------------------------------------------------------------------------------------------ helpers

def create(api, name: str | None = None, prefix: str = V, **body) -> str:
    body.setdefault("Image", "busybox")
    url = f"{prefix}/containers/create" + (f"?name={name}" if name else "")
    r = api.post(url, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["Id"]


def run(api, name: str | None = None, **body) -> str:
    cid = create(api, name, **body)
    r = api.post(f"{V}/containers/{cid}/start")
    assert r.status_code == 204, r.get_json()
    return cid


def inspect(api, ref: str) -> dict:
    r = api.get(f"{V}/containers/{ref}/json")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def wait(api, ref: str, condition: str | None = None) -> dict:
    query = f"?condition={condition}" if condition else ""
    r = api.post(f"{V}/containers/{ref}/wait{query}")
    assert r.status_code == 200, r.data
    return json.loads(r.data)


class PendingWait:
    """A `POST /wait` whose head has been sent (the request is registered) and whose body is read in
    a thread, so a test can check that it blocks and then release it."""

    def __init__(self, api, ref: str, condition: str | None = None):
        query = f"?condition={condition}" if condition else ""
        self.response = api.post(f"{V}/containers/{ref}/wait{query}", buffered=False)
        assert self.response.status_code == 200
        assert self.response.mimetype == "application/json"
        self.body: list[bytes] = []
        self.thread = threading.Thread(target=lambda: self.body.append(self.response.get_data()), daemon=True)
        self.thread.start()

    def blocked(self, seconds: float = 0.15) -> bool:
        self.thread.join(seconds)
        return self.thread.is_alive()

    def result(self, timeout: float = 5) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "wait did not return"
        return json.loads(self.body[0])


def events(engine, cid: str) -> list:
    """The container's events as /events sends them: with its labels (stored once, app/events/labels.py)."""
    return [engine.container_labels.attach(e) for e in engine.store.read(limit=100_000)
            if e.type == "container" and e.actor_id == cid]


def actions(engine, cid: str) -> list[str]:
    return [e.action for e in events(engine, cid)]


def eventually(predicate, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def error(r) -> str:
    return r.get_json()["message"]


# ------------------------------------------------------------------------------------------ create

@pytest.mark.parametrize("prefix", ["", V, "/v1.24"])
def test_create_answers_201_with_id_and_warnings(fake_api, fake_engine, image, prefix):
    r = fake_api.post(f"{prefix}/containers/create?name=web", json={"Image": "busybox"})
    assert r.status_code == 201
    body = r.get_json()
    assert list(body) == ["Id", "Warnings"] and body["Warnings"] == []
    cid = body["Id"]
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    [ev] = events(fake_engine, cid)
    assert ev.action == "create"
    assert ev.attributes == {"image": "busybox", "name": "web", "from.image": "yes"}
    state = inspect(fake_api, "web")["State"]
    assert state["Status"] == "created" and not state["Running"] and state["Pid"] == 0


def test_create_without_name_picks_a_free_random_one(fake_api, image):
    names = {inspect(fake_api, create(fake_api))["Name"] for _ in range(5)}
    assert len(names) == 5
    assert all(n.startswith("/") and "_" in n for n in names)


def test_generated_names_never_run_out_when_the_space_is_exhausted(fake_api, image, monkeypatch):
    """With a one-name space every create after the first collides: create falls back to a random
    suffix instead of answering 409 (300 parallel `run --rm` once hit that)."""
    from app.runtime.containers import create as create_module
    monkeypatch.setattr(create_module, "_ADJECTIVES", ["only"])
    monkeypatch.setattr(create_module, "_NAMES", ["one"])
    names = [inspect(fake_api, create(fake_api))["Name"] for _ in range(4)]
    assert names[0] == "/only_one" and len(set(names)) == 4
    assert all(n.startswith("/only_") for n in names)


def test_a_generated_name_taken_by_a_concurrent_create_is_drawn_again(fake_api, fake_engine, image, monkeypatch):
    """The reader saw the name free, the guard (inside the append) finds it taken: draw again."""
    from app.runtime.containers import create as create_module
    taken = inspect(fake_api, create(fake_api))["Name"].lstrip("/")
    draws = iter([taken, taken])
    real = create_module.CreateMixin._generated_name
    monkeypatch.setattr(create_module.CreateMixin, "_generated_name", lambda self: next(draws, None) or real(self))
    name = inspect(fake_api, create(fake_api))["Name"].lstrip("/")
    assert name != taken and next(draws, None) is None


def test_create_name_conflict_is_409_with_dockers_message(fake_api, fake_engine, image):
    first = create(fake_api, "xy")
    for name in ("xy", "/xy"):
        r = fake_api.post(f"{V}/containers/create?name={quote(name)}", json={"Image": "busybox"})
        assert r.status_code == 409
        assert error(r) == (f'Conflict. The container name "/xy" is already in use by container "{first}". You '
                            "have to remove (or rename) that container to be able to reuse that name.")
    assert fake_engine.store.query("SELECT COUNT(*) FROM containers")[0][0] == 1


@pytest.mark.parametrize("name", ["a", "-web", "we b", "web/1", "ü", "_x"])
def test_create_invalid_name_is_400(fake_api, fake_engine, image, name):
    r = fake_api.post(f"{V}/containers/create?name={quote(name)}", json={"Image": "busybox"})
    assert r.status_code == 400
    assert error(r) == f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    assert not fake_engine.store.read(types=["container"])


def test_create_unknown_image_is_404(fake_api, fake_engine, image):
    r = fake_api.post(f"{V}/containers/create", json={"Image": "nosuch"})
    assert r.status_code == 404
    assert error(r) == "No such image: nosuch:latest"
    assert not fake_engine.store.read(types=["container"])


@pytest.mark.parametrize("host_config,message", [
    ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": -1}, "invalid memory limit: must be positive"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"CpuShares": -1}, "invalid CPU shares: must be positive"),
    ({"NanoCpus": 1000}, "Range of CPUs is from 0.01 to"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
])
def test_create_bad_limits_are_400(fake_api, fake_engine, image, host_config, message):
    r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", "HostConfig": host_config})
    assert r.status_code == 400
    assert error(r).startswith(message)
    assert not fake_engine.store.read(types=["container"])


@pytest.mark.parametrize("body,message", [
    ({}, "Config cannot be empty in order to create a container"),
    ({"Image": "busybox", "Entrypoint": [], "Cmd": []}, "no command specified"),
    ({"Image": "busybox", "WorkingDir": "tmp"},
     "the working directory 'tmp' is invalid, it needs to be an absolute path"),
    ({"Image": "busybox", "StopSignal": "FOO"}, "Invalid signal: FOO"),
    ({"Image": "busybox", "Env": ["A=1", "=foo"]}, "invalid environment variable: =foo"),
    ({"Image": "busybox", "Env": [""]}, "invalid environment variable: "),
])
def test_create_bad_config_is_400(fake_api, fake_engine, image, body, message):
    r = fake_api.post(f"{V}/containers/create", json=body)
    assert r.status_code == 400 and error(r) == message
    assert not fake_engine.store.read(types=["container"])
    r = fake_api.post(f"{V}/containers/create", data="not json", content_type="application/json")
    assert r.status_code == 400


def test_create_cleans_the_working_directory_as_moby(fake_api, image):
    cid = create(fake_api, "wd", WorkingDir="//srv/../data/./x/")
    assert inspect(fake_api, cid)["Config"]["WorkingDir"] == "/data/x"


def test_create_unknown_network_is_refused(fake_api, image):
    r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", "HostConfig": {"NetworkMode": "nosuch"}})
    assert r.status_code == 404 and error(r) == "network nosuch not found"


# ------------------------------------------------------------------------------------------ start

def test_start_is_204_then_304_and_the_container_runs(fake_api, fake_engine, host, image):
    cid = create(fake_api, "web")
    r = fake_api.post(f"/containers/{cid}/start")
    assert r.status_code == 204 and r.data == b""
    proc = host.process(cid)
    assert proc.status == "running" and proc.args == ["sleep", "300"]
    state = inspect(fake_api, "web")["State"]
    assert state["Status"] == "running" and state["Running"] and state["Pid"] == proc.pid
    assert state["StartedAt"] != "0001-01-01T00:00:00Z" and state["FinishedAt"] == "0001-01-01T00:00:00Z"
    bundle = fake_engine.containers.bundle(cid)
    assert bundle in host.mounted
    with open(os.path.join(bundle, "hostname")) as fh:
        assert fh.read() == cid[:12] + "\n"
    with open(os.path.join(bundle, "config.json")) as fh:
        spec = json.load(fh)
    assert spec["root"]["path"] == os.path.join(bundle, "rootfs") and spec["hostname"] == cid[:12]
    assert spec["linux"]["cgroupsPath"] == f"/berth-fake/{cid}"

    r = fake_api.post(f"{V}/containers/web/start")
    assert r.status_code == 304 and r.data == b""
    assert actions(fake_engine, cid) == ["create", "start"]
    assert events(fake_engine, cid)[1].attributes == {"image": "busybox", "name": "web", "from.image": "yes"}


def test_start_unknown_container_is_404(fake_api, image):
    r = fake_api.post(f"{V}/containers/nosuch/start")
    assert r.status_code == 404 and error(r) == "No such container: nosuch"


@pytest.mark.parametrize("cmd,text,code", [
    (["nosuch"], 'exec: "nosuch": executable file not found in $PATH', 127),
    (["/nonexistent"], "no such file or directory", 127),
    (["/data"], "permission denied", 126),              # a directory
    (["/etc/motd"], "permission denied", 126),          # not executable
])
def test_start_failure_reports_runtime_error_and_exit_code(fake_api, fake_engine, host, image, cmd, text, code):
    cid = create(fake_api, "bad", Cmd=cmd)
    r = fake_api.post(f"{V}/containers/bad/start")
    assert r.status_code == 400                              # moby: an invalid command is the request's fault
    message = error(r)
    assert message.startswith("failed to create task for container: ") and text in message
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "created" and not state["Running"]
    assert state["ExitCode"] == code and state["Error"] == message
    bundle = fake_engine.containers.bundle(cid)
    assert bundle not in host.mounted and not host.runc_knows(cid)           # cleaned up again
    assert not os.listdir(host.runc_root)
    assert actions(fake_engine, cid) == ["create", "start-failed"]
    # start-failed is berth's own bookkeeping: /events never streams it
    assert not events(fake_engine, cid)[1].is_docker_visible

    r = fake_api.post(f"{V}/containers/bad/start")          # it fails the same way again
    assert r.status_code == 400 and error(r) == message
    assert actions(fake_engine, cid) == ["create", "start-failed", "start-failed"]


def test_start_failure_of_an_autoremove_container_removes_it(fake_api, fake_engine, host, image):
    cid = create(fake_api, "gone", Cmd=["nosuch"], HostConfig={"AutoRemove": True})
    r = fake_api.post(f"{V}/containers/gone/start")
    assert r.status_code == 400 and "executable file not found" in error(r)
    assert fake_api.get(f"{V}/containers/{cid}/json").status_code == 404
    assert actions(fake_engine, cid) == ["create", "start-failed", "destroy"]
    assert not os.path.exists(fake_engine.containers.bundle(cid))
    create(fake_api, "gone", Cmd=["true"])                 # the name is free again


def test_start_failure_of_runc_start_cleans_up_the_created_container(fake_api, fake_engine, host, image):
    host.script("flaky", start_error="cannot start container: fake failure")
    cid = create(fake_api, "flaky")
    r = fake_api.post(f"{V}/containers/flaky/start")
    assert r.status_code == 500 and error(r) == "cannot start container: fake failure"
    assert not host.runc_knows(cid) and fake_engine.containers.bundle(cid) not in host.mounted
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "created" and state["ExitCode"] == 128 and state["Error"] == error(r)
    host.scripts.clear()
    r = fake_api.post(f"{V}/containers/flaky/start")       # a later start works (old exit file ignored)
    assert r.status_code == 204
    assert inspect(fake_api, cid)["State"]["Status"] == "running"
    assert actions(fake_engine, cid) == ["create", "start-failed", "start"]


def test_scripted_create_error_keeps_runcs_message(fake_api, fake_engine, host, image):
    host.script("odd", create_error="error during container init: fake trouble")
    cid = create(fake_api, "odd")
    r = fake_api.post(f"{V}/containers/odd/start")
    assert r.status_code == 500
    assert error(r) == ("failed to create task for container: unable to start container process: error during "
                        "container init: fake trouble")
    state = inspect(fake_api, cid)["State"]
    assert state["ExitCode"] == 128 and state["Error"] == error(r)      # Docker's exitUnknown


def test_attach_is_in_place_before_its_head_goes_out(fake_api, fake_engine, image):
    """`docker run` starts the container the moment it reads the 101 head: by then the attach must be
    queued for that start, or the first output is lost (it was, under load)."""
    cid = create(fake_api, "early")
    c = fake_engine.containers
    ours, theirs = socket.socketpair()
    seen = {}

    def hijack(status, headers):
        seen.update(status=status, queued=cid in c._attach_waiters)
        theirs.close()                        # then the client hangs up without starting it
        return ours, ours.makefile("rb")

    fake_api.post(f"{V}/containers/early/attach?stream=1&stdout=1",
                  headers={"Connection": "Upgrade", "Upgrade": "tcp"}, environ_overrides={"berth.hijack": hijack})
    ours.close()
    assert seen == {"status": "101 UPGRADED", "queued": True}
    assert cid not in c._attach_waiters       # the hang-up took it off the queue


def test_attach_waiting_for_a_start_is_released_by_remove(fake_api, fake_engine, host, image):
    cid = create(fake_api, "later")
    got = []
    c = fake_engine.containers
    waiter = threading.Thread(target=lambda: got.append(c.attach_connection(c.reserve_attach(cid), lambda: False)))
    waiter.start()
    assert eventually(lambda: cid in fake_engine.containers._attach_waiters)
    assert fake_api.delete(f"{V}/containers/later").status_code == 204
    waiter.join(2)
    assert not waiter.is_alive() and got == [None]
    # a running container whose conmon socket refuses (it exited a moment ago): no connection, no error
    running = run(fake_api, "now")
    assert c.attach_connection(c.reserve_attach(running), lambda: False) is None


def test_start_with_unknown_user_is_400(fake_api, fake_engine, image):
    cid = create(fake_api, "ghost", User="ghost")
    r = fake_api.post(f"{V}/containers/ghost/start")
    assert r.status_code == 400
    assert error(r) == "unable to find user ghost: no matching entries in passwd file"
    assert inspect(fake_api, cid)["State"]["Error"] == error(r)
    assert run(fake_api, "nobody", User="nobody")


# ------------------------------------------------------------------------------------------ exits

def test_exit_is_recorded_by_the_watcher(fake_api, fake_engine, host, image):
    cid = run(fake_api, "job")
    assert inspect(fake_api, cid)["State"]["Running"]
    host.exit(cid, 3)
    assert eventually(lambda: inspect(fake_api, cid)["State"]["Status"] == "exited")
    state = inspect(fake_api, cid)["State"]
    assert state["ExitCode"] == 3 and state["Pid"] == 0 and not state["OOMKilled"]
    assert state["FinishedAt"] >= state["StartedAt"]
    die = events(fake_engine, cid)[-1]
    assert die.action == "die" and die.attributes["exitCode"] == "3" and "execDuration" in die.attributes
    assert fake_engine.containers.bundle(cid) not in host.mounted and not host.runc_knows(cid)


def test_oom_kill_appends_oom_then_die_137(fake_api, fake_engine, image):
    cid = run(fake_api, "hog", Cmd=["oom"])
    assert wait(fake_api, cid) == {"StatusCode": 137, "Error": None}
    assert actions(fake_engine, cid) == ["create", "start", "oom", "die"]
    state = inspect(fake_api, cid)["State"]
    assert state["OOMKilled"] and state["ExitCode"] == 137


def test_logs_of_a_finished_container(fake_api, image):
    cid = run(fake_api, "say", Cmd=["echo", "hello", "world"])
    assert wait(fake_api, cid)["StatusCode"] == 0
    r = fake_api.get(f"{V}/containers/say/logs?stdout=1")
    assert r.status_code == 200 and r.mimetype == "application/vnd.docker.multiplexed-stream"
    assert r.data == b"\x01\x00\x00\x00\x00\x00\x00\x0chello world\n"
    r = fake_api.get(f"{V}/containers/say/logs")
    assert r.status_code == 400 and error(r) == "Bad parameters: you must choose at least one stream"


# ------------------------------------------------------------------------------------------ stop

def test_stop_sends_term_and_appends_kill_die_stop(fake_api, fake_engine, host, image):
    cid = run(fake_api, "web")
    r = fake_api.post(f"{V}/containers/web/stop?t=10")
    assert r.status_code == 204
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 128 + signal.SIGTERM
    evs = events(fake_engine, cid)
    assert [e.action for e in evs] == ["create", "start", "kill", "die", "stop"]
    assert evs[2].attributes["signal"] == str(int(signal.SIGTERM))
    assert evs[3].attributes["exitCode"] == "143"
    assert host.calls.count(("kill", cid, "15")) == 1

    assert fake_api.post(f"{V}/containers/web/stop").status_code == 304       # already stopped
    created = create(fake_api, "fresh")
    assert fake_api.post(f"/containers/{created}/stop").status_code == 304
    assert actions(fake_engine, cid)[-1] == "stop" and actions(fake_engine, created) == ["create"]


def test_stop_of_a_container_that_ignores_term_ends_with_sigkill(fake_api, fake_engine, host, image):
    cid = run(fake_api, "stubborn", Cmd=["ignore", "TERM"])
    begun = time.monotonic()
    r = fake_api.post(f"{V}/containers/stubborn/stop?t=1")
    took = time.monotonic() - begun
    assert r.status_code == 204
    assert 1.0 <= took < 4, took                       # waited the timeout, then killed
    assert inspect(fake_api, cid)["State"]["ExitCode"] == 137
    evs = events(fake_engine, cid)
    assert [e.action for e in evs] == ["create", "start", "kill", "kill", "die", "stop"]
    assert [e.attributes["signal"] for e in evs if e.action == "kill"] == ["15", "9"]
    assert evs[4].attributes["exitCode"] == "137"


def test_stop_timeout_and_signal_come_from_the_config_or_the_query(fake_api, fake_engine, host, image):
    # StopTimeout 0 in the config: SIGKILL at once, no waiting
    cid = run(fake_api, "quick", Cmd=["ignore", "TERM"], StopTimeout=0)
    begun = time.monotonic()
    assert fake_api.post(f"{V}/containers/quick/stop").status_code == 204
    assert time.monotonic() - begun < 0.9
    assert inspect(fake_api, cid)["State"]["ExitCode"] == 137

    # StopSignal in the config, trapped by the process: a clean exit
    host.script("graceful", traps={"USR1": 0}, ignore=["TERM"])
    cid = run(fake_api, "graceful", StopSignal="SIGUSR1")
    assert fake_api.post(f"{V}/containers/graceful/stop?t=5").status_code == 204
    assert inspect(fake_api, cid)["State"]["ExitCode"] == 0
    assert [e.attributes["signal"] for e in events(fake_engine, cid) if e.action == "kill"] == ["10"]

    # ?signal= (API ≥ 1.42) overrides the config
    host.script("hup", traps={"HUP": 7}, ignore=["TERM", "USR1"])
    cid = run(fake_api, "hup", StopSignal="SIGUSR1")
    assert fake_api.post(f"{V}/containers/hup/stop?signal=HUP&t=5").status_code == 204
    assert inspect(fake_api, cid)["State"]["ExitCode"] == 7

    r = fake_api.post(f"{V}/containers/{run(fake_api, 'other')}/stop?signal=NOPE")
    assert r.status_code == 400 and error(r) == "Invalid signal: NOPE"
    r = fake_api.post(f"{V}/containers/other/stop?t=soon")
    assert r.status_code == 400


# ------------------------------------------------------------------------------------------ kill

@pytest.mark.parametrize("query,number", [
    ("", signal.SIGKILL), ("?signal=KILL", signal.SIGKILL), ("?signal=HUP", signal.SIGHUP),
    ("?signal=SIGUSR1", signal.SIGUSR1), ("?signal=sigterm", signal.SIGTERM), ("?signal=9", signal.SIGKILL),
    ("?signal=15", signal.SIGTERM), ("?signal=int", signal.SIGINT),
])
def test_kill_accepts_signal_names_and_numbers(fake_api, fake_engine, host, image, query, number):
    cid = run(fake_api, "target")
    r = fake_api.post(f"{V}/containers/target/kill{query}")
    assert r.status_code == 204
    assert wait(fake_api, cid)["StatusCode"] == 128 + number
    kill = [e for e in events(fake_engine, cid) if e.action == "kill"]
    assert [e.attributes["signal"] for e in kill] == [str(int(number))]
    assert kill[0].attributes["name"] == "target" and kill[0].attributes["image"] == "busybox"


@pytest.mark.parametrize("value", ["FOO", "0", "65", "-1", "SIGNOPE"])
def test_kill_with_an_invalid_signal_is_400(fake_api, fake_engine, host, image, value):
    cid = run(fake_api, "target")
    r = fake_api.post(f"{V}/containers/target/kill?signal={quote(value)}")
    assert r.status_code == 400 and error(r) == f"Invalid signal: {value}"
    assert actions(fake_engine, cid) == ["create", "start"]
    assert host.process(cid).signals == [] and host.process(cid).status == "running"


def test_kill_with_a_signal_the_process_ignores_leaves_it_running(fake_api, fake_engine, host, image):
    cid = run(fake_api, "deaf", Cmd=["ignore", "USR1", "TERM"])
    for sig in ("USR1", "TERM", "WINCH"):
        assert fake_api.post(f"{V}/containers/deaf/kill?signal={sig}").status_code == 204
    assert host.process(cid).signals == [signal.SIGUSR1, signal.SIGTERM, signal.SIGWINCH]
    assert inspect(fake_api, cid)["State"]["Running"]
    assert actions(fake_engine, cid) == ["create", "start", "kill", "kill", "kill"]


def test_kill_of_a_container_that_is_not_running_is_409(fake_api, fake_engine, image):
    cid = create(fake_api, "idle")
    r = fake_api.post(f"{V}/containers/idle/kill")
    assert r.status_code == 409
    assert error(r) == f"cannot kill container: idle: container {cid} is not running"
    r = fake_api.post(f"{V}/containers/nosuch/kill")
    assert r.status_code == 404 and error(r) == "No such container: nosuch"
    assert actions(fake_engine, cid) == ["create"]


def test_kill_when_runc_finds_the_process_gone_is_409(fake_api, fake_engine, host, image):
    cid = run(fake_api, "racer")
    with host.lock:                                     # it exits, the watcher has not recorded it yet
        host.process(cid).status = "stopped"
    r = fake_api.post(f"{V}/containers/racer/kill?signal=TERM")
    assert r.status_code == 409 and error(r) == f"cannot kill container: racer: container {cid} is not running"
    assert "kill" not in actions(fake_engine, cid)
    host.process(cid).status = "running"
    host.exit(cid, 0)


# ------------------------------------------------------------------------------------------ wait

def test_wait_not_running(fake_api, fake_engine, host, image):
    created = create(fake_api, "fresh")
    assert wait(fake_api, created) == {"StatusCode": 0, "Error": None}               # created: at once
    assert wait(fake_api, "fresh", "not-running") == {"StatusCode": 0, "Error": None}

    cid = run(fake_api, "job")
    pending = PendingWait(fake_api, cid, "not-running")
    assert pending.blocked()
    host.exit(cid, 5)
    assert pending.result() == {"StatusCode": 5, "Error": None}
    assert wait(fake_api, cid) == {"StatusCode": 5, "Error": None}                   # exited: at once


def test_wait_next_exit_waits_for_the_next_run(fake_api, fake_engine, host, image):
    cid = run(fake_api, "twice", Cmd=["exit", "3"])
    assert wait(fake_api, cid)["StatusCode"] == 3
    pending = PendingWait(fake_api, cid, "next-exit")       # exited already: waits for the next exit
    assert pending.blocked()
    assert fake_api.post(f"{V}/containers/{cid}/start").status_code == 204
    assert pending.result() == {"StatusCode": 3, "Error": None}

    waiting = PendingWait(fake_api, create(fake_api, "later", Cmd=["exit", "4"]), "next-exit")
    assert waiting.blocked()                                 # registered before start, as `docker run` does
    assert fake_api.post(f"{V}/containers/later/start").status_code == 204
    assert waiting.result() == {"StatusCode": 4, "Error": None}


def test_wait_removed(fake_api, fake_engine, host, image):
    cid = run(fake_api, "doomed")
    pending = PendingWait(fake_api, cid, "removed")
    host.exit(cid, 2)
    assert pending.blocked(0.3)                              # exited is not removed
    assert fake_api.delete(f"{V}/containers/doomed").status_code == 204
    assert pending.result() == {"StatusCode": 2, "Error": None}

    created = create(fake_api, "never")
    pending = PendingWait(fake_api, created, "removed")
    assert fake_api.delete(f"{V}/containers/never").status_code == 204
    assert pending.result() == {"StatusCode": 0, "Error": None}


def test_wait_bad_condition_or_container(fake_api, image):
    create(fake_api, "xy")
    r = fake_api.post(f"{V}/containers/xy/wait?condition=bogus")
    assert r.status_code == 400 and error(r).startswith("invalid condition: ")
    r = fake_api.post(f"{V}/containers/nosuch/wait")
    assert r.status_code == 404 and error(r) == "No such container: nosuch"


def test_autoremove_container_goes_after_its_exit(fake_api, fake_engine, host, image):
    cid = create(fake_api, "rm", Cmd=["exit", "6"], HostConfig={"AutoRemove": True})
    pending = PendingWait(fake_api, cid, "removed")
    assert fake_api.post(f"{V}/containers/rm/start").status_code == 204
    assert pending.result() == {"StatusCode": 6, "Error": None}
    assert fake_api.get(f"{V}/containers/rm/json").status_code == 404
    assert actions(fake_engine, cid) == ["create", "start", "die", "destroy"]
    assert not os.path.exists(fake_engine.containers.bundle(cid))


# ------------------------------------------------------------------------------------------ remove

def test_remove_running_needs_force(fake_api, fake_engine, host, image):
    cid = run(fake_api, "web")
    r = fake_api.delete(f"{V}/containers/web")
    assert r.status_code == 409
    assert error(r) == ('cannot remove container "/web": container is running: stop the container before '
                        "removing or force remove")
    assert inspect(fake_api, cid)["State"]["Running"]
    r = fake_api.delete(f"{V}/containers/web?force=1&v=1")
    assert r.status_code == 204
    assert fake_api.get(f"{V}/containers/{cid}/json").status_code == 404
    evs = events(fake_engine, cid)
    assert [e.action for e in evs] == ["create", "start", "kill", "die", "destroy"]
    assert evs[2].attributes["signal"] == "9" and evs[3].attributes["exitCode"] == "137"
    assert evs[4].attributes == {"image": "busybox", "name": "web", "from.image": "yes"}
    bundle = fake_engine.containers.bundle(cid)
    assert not os.path.exists(bundle) and bundle not in host.mounted and not os.listdir(host.runc_root)
    assert not os.path.exists(os.path.join(host.exits_dir, cid))
    run(fake_api, "web")                                     # the name is free again


def test_remove_created_exited_and_unknown(fake_api, fake_engine, host, image):
    created = create(fake_api, "aa")
    assert fake_api.delete("/containers/aa?force=False").status_code == 204
    assert actions(fake_engine, created) == ["create", "destroy"]
    exited = run(fake_api, "bb", Cmd=["true"])
    assert wait(fake_api, exited)["StatusCode"] == 0
    assert fake_api.delete(f"{V}/containers/{exited[:10]}").status_code == 204
    assert actions(fake_engine, exited) == ["create", "start", "die", "destroy"]
    r = fake_api.delete(f"{V}/containers/bb")
    assert r.status_code == 404 and error(r) == "No such container: bb"
    assert fake_engine.store.query("SELECT COUNT(*) FROM containers")[0][0] == 0


# ------------------------------------------------------------------------------------------ rename

def test_rename(fake_api, fake_engine, image):
    cid = create(fake_api, "old")
    other = create(fake_api, "taken")
    r = fake_api.post(f"{V}/containers/old/rename?name=new")
    assert r.status_code == 204
    assert inspect(fake_api, cid)["Name"] == "/new"
    assert fake_api.get(f"{V}/containers/old/json").status_code == 404
    ev = events(fake_engine, cid)[-1]
    assert ev.action == "rename" and ev.attributes["name"] == "new" and ev.attributes["oldName"] == "/old"

    r = fake_api.post(f"{V}/containers/{cid[:12]}/rename?name=taken")
    assert r.status_code == 409 and f'"/taken" is already in use by container "{other}"' in error(r)
    r = fake_api.post(f"{V}/containers/new/rename?name=bad%20name")
    assert r.status_code == 400 and error(r).startswith("Invalid container name (bad name)")
    r = fake_api.post(f"{V}/containers/new/rename")
    assert r.status_code == 400 and error(r) == "Neither old nor new names may be empty"
    r = fake_api.post(f"{V}/containers/nosuch/rename?name=x1")
    assert r.status_code == 404
    assert actions(fake_engine, cid) == ["create", "rename"]
    assert fake_api.post(f"{V}/containers/new/rename?name=/newer").status_code == 204
    assert inspect(fake_api, cid)["Name"] == "/newer"


def test_rename_of_a_running_container_keeps_it_running(fake_api, fake_engine, host, image):
    cid = run(fake_api, "aa")
    assert fake_api.post(f"{V}/containers/aa/rename?name=bb").status_code == 204
    assert inspect(fake_api, "bb")["State"]["Running"]
    assert fake_api.post(f"{V}/containers/bb/stop?t=0").status_code == 204
    die = [e for e in events(fake_engine, cid) if e.action == "die"][0]
    assert die.attributes["name"] == "bb"


# ------------------------------------------------------------------------------------------ pause

def test_pause_and_unpause(fake_api, fake_engine, host, image):
    cid = run(fake_api, "web")
    assert fake_api.post(f"{V}/containers/web/pause").status_code == 204
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "paused" and state["Paused"] and state["Running"]
    assert host.process(cid).status == "paused"
    [row] = fake_api.get(f"{V}/containers/json").get_json()
    assert row["State"] == "paused" and row["Status"].endswith("(Paused)")

    r = fake_api.post(f"{V}/containers/web/pause")
    assert r.status_code == 409 and error(r) == f"Container {cid} is already paused"
    r = fake_api.post(f"{V}/containers/web/start")
    assert r.status_code == 409 and error(r) == "cannot start a paused container, try unpause instead"

    assert fake_api.post(f"{V}/containers/web/unpause").status_code == 204
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "running" and not state["Paused"] and host.process(cid).status == "running"
    r = fake_api.post(f"{V}/containers/web/unpause")
    assert r.status_code == 409 and error(r) == f"Container {cid} is not paused"
    assert actions(fake_engine, cid) == ["create", "start", "pause", "unpause"]


def test_pause_and_unpause_of_containers_not_running(fake_api, fake_engine, image):
    cid = create(fake_api, "idle")
    r = fake_api.post(f"{V}/containers/idle/pause")
    assert r.status_code == 409 and error(r).lower() == f"container {cid} is not running"
    r = fake_api.post(f"{V}/containers/idle/unpause")
    assert r.status_code == 409 and error(r) == f"Container {cid} is not paused"
    assert fake_api.post(f"{V}/containers/nosuch/pause").status_code == 404
    assert actions(fake_engine, cid) == ["create"]


def test_paused_container_can_be_force_removed_and_stopped(fake_api, fake_engine, host, image):
    cid = run(fake_api, "frozen")
    assert fake_api.post(f"{V}/containers/frozen/pause").status_code == 204
    assert fake_api.delete(f"{V}/containers/frozen").status_code == 409
    r = fake_api.delete(f"{V}/containers/frozen")
    assert error(r) == 'cannot remove container "/frozen": container is paused and must be unpaused first'
    assert fake_api.delete(f"{V}/containers/frozen?force=true").status_code == 204
    # killing thaws the freezer (an `unpause` is recorded unless the exit was seen first)
    assert [a for a in actions(fake_engine, cid) if a != "unpause"][-3:] == ["kill", "die", "destroy"]

    cid = run(fake_api, "cold")
    assert fake_api.post(f"{V}/containers/cold/pause").status_code == 204
    assert fake_api.post(f"{V}/containers/cold/stop?t=0").status_code == 204
    state = inspect(fake_api, cid)["State"]
    assert state["Status"] == "exited" and not state["Paused"]
    assert actions(fake_engine, cid)[-2:] == ["die", "stop"]


# ------------------------------------------------------------------------------------------ restart

def test_restart_running_and_stopped_containers(fake_api, fake_engine, host, image):
    cid = run(fake_api, "web")
    first_pid = inspect(fake_api, cid)["State"]["Pid"]
    assert fake_api.post(f"{V}/containers/web/restart?t=5").status_code == 204
    state = inspect(fake_api, cid)["State"]
    assert state["Running"] and state["Pid"] != first_pid and state["Pid"] == host.process(cid).pid
    assert inspect(fake_api, cid)["RestartCount"] == 0          # only restart policies count
    assert actions(fake_engine, cid) == ["create", "start", "kill", "die", "stop", "start", "restart"]

    created = create(fake_api, "fresh")
    assert fake_api.post("/containers/fresh/restart").status_code == 204
    assert inspect(fake_api, created)["State"]["Running"]
    assert actions(fake_engine, created) == ["create", "start", "restart"]

    stubborn = run(fake_api, "stubborn", Cmd=["ignore", "TERM"])
    assert fake_api.post(f"{V}/containers/stubborn/restart?t=0").status_code == 204
    assert [e.attributes.get("signal") for e in events(fake_engine, stubborn) if e.action == "kill"] == ["15", "9"]
    assert inspect(fake_api, stubborn)["State"]["Running"]
    assert fake_api.post(f"{V}/containers/nosuch/restart").status_code == 404


def test_restart_of_a_container_that_cannot_start(fake_api, fake_engine, image):
    cid = create(fake_api, "bad", Cmd=["nosuch"])
    r = fake_api.post(f"{V}/containers/bad/restart")
    assert r.status_code == 400 and "executable file not found" in error(r)
    assert actions(fake_engine, cid) == ["create", "start-failed"]


# ------------------------------------------------------------------------------------------ inspect, list

def test_inspect_shape(fake_api, fake_engine, image):
    cid = create(fake_api, "web", Cmd=["sleep", "60"], Env=["A=1"], Labels={"tier": "front"},
                 HostConfig={"Memory": 64 << 20, "AutoRemove": False})
    info = inspect(fake_api, cid)
    assert set(info) >= {"Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath",
                         "HostsPath", "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel",
                         "ProcessLabel", "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts",
                         "Config", "NetworkSettings"}
    assert info["Id"] == cid and info["Name"] == "/web" and info["Image"] == image
    assert info["Path"] == "sleep" and info["Args"] == ["60"]
    assert info["Created"].endswith("Z") and info["Created"][4] == "-"
    assert info["Driver"] == "overlay2" and info["Platform"] == "linux" and info["RestartCount"] == 0
    assert set(info["State"]) == {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                                  "ExitCode", "Error", "StartedAt", "FinishedAt"}
    assert info["State"] == {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                             "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                             "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}
    config = info["Config"]
    assert config["Image"] == "busybox" and config["Cmd"] == ["sleep", "60"] and config["Env"] == ["A=1"]
    assert config["Labels"] == {"from.image": "yes", "tier": "front"}
    assert config["Hostname"] == cid[:12] and config["Tty"] is False and config["OpenStdin"] is False
    host_config = info["HostConfig"]
    assert host_config["Memory"] == 64 << 20 and host_config["AutoRemove"] is False
    assert host_config["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert host_config["LogConfig"]["Type"] == "json-file"
    bundle = fake_engine.containers.bundle(cid)
    assert info["HostnamePath"] == os.path.join(bundle, "hostname")
    assert info["GraphDriver"]["Data"]["MergedDir"] == os.path.join(bundle, "rootfs")

    # every way to name it
    for ref in (cid, cid[:12], cid[:3], "web"):
        assert inspect(fake_api, ref)["Id"] == cid
    r = fake_api.get("/containers/nosuch/json")
    assert r.status_code == 404 and error(r) == "No such container: nosuch"


def test_inspect_image_cmd_and_ambiguous_prefix(fake_api, fake_engine, image):
    cid = create(fake_api, "plain")
    info = inspect(fake_api, cid)
    assert info["Path"] == "sleep" and info["Args"] == ["300"] and info["Config"]["Cmd"] == ["sleep", "300"]
    ids = [create(fake_api) for _ in range(40)]
    shared = next(a[0] for a in ids for b in ids if a != b and a[0] == b[0])
    r = fake_api.get(f"{V}/containers/{shared}/json")
    assert r.status_code == 400 and error(r) == f"multiple IDs found with provided prefix: {shared}"


def test_list_shows_running_by_default_and_all_on_request(fake_api, fake_engine, host, image):
    running = run(fake_api, "up")
    exited = run(fake_api, "down", Cmd=["exit", "3"])
    assert wait(fake_api, exited)["StatusCode"] == 3
    created = create(fake_api, "new")
    rows = fake_api.get(f"{V}/containers/json").get_json()
    assert [r["Id"] for r in rows] == [running]
    assert rows[0]["Names"] == ["/up"] and rows[0]["State"] == "running" and rows[0]["Status"].startswith("Up ")
    assert rows[0]["Command"] == "sleep 300" and rows[0]["Image"] == "busybox"
    rows = {r["Id"]: r for r in fake_api.get(f"{V}/containers/json?all=1").get_json()}
    assert set(rows) == {running, exited, created}
    assert rows[exited]["Status"].startswith("Exited (3) ") and rows[created]["Status"] == "Created"
    rows = fake_api.get(f"{V}/containers/json?all=1&filters={quote(json.dumps({'exited': ['3']}))}").get_json()
    assert [r["Id"] for r in rows] == [exited]


def test_top_and_resize(fake_api, fake_engine, host, image):
    cid = create(fake_api, "tty", Tty=True, Cmd=["sleep", "60"])
    r = fake_api.get(f"{V}/containers/tty/top")
    assert r.status_code == 409 and error(r).lower() == f"container {cid} is not running"
    r = fake_api.post(f"{V}/containers/tty/resize?h=40&w=100")
    assert r.status_code == 409 and error(r).lower() == f"container {cid} is not running"
    assert fake_api.post(f"{V}/containers/tty/start").status_code == 204
    top = fake_api.get(f"{V}/containers/tty/top").get_json()
    assert "PID" in top["Titles"] and top["Processes"] == []    # the fake pid is no host process
    assert fake_api.post(f"{V}/containers/tty/resize?h=40&w=100").status_code == 200
    assert host.resizes == [(cid, 40, 100)]
    assert fake_api.post(f"{V}/containers/tty/resize?h=-1&w=1").status_code == 400
    plain = run(fake_api, "plain")
    assert fake_api.post(f"{V}/containers/plain/resize?h=10&w=10").status_code == 200   # ignored, as Docker
    assert host.resizes == [(cid, 40, 100)]
    assert actions(fake_engine, cid)[-1] == "top" and "top" not in actions(fake_engine, plain)


# ------------------------------------------------------------------------------------------ the log

def test_every_action_appends_its_events_in_docker_shape(fake_api, fake_engine, host, image):
    since = fake_engine.store.last_seq
    cid = run(fake_api, "life", Labels={"app": "demo"})
    assert fake_api.post(f"{V}/containers/life/pause").status_code == 204
    assert fake_api.post(f"{V}/containers/life/unpause").status_code == 204
    assert fake_api.post(f"{V}/containers/life/kill?signal=USR1").status_code == 204
    assert wait(fake_api, cid)["StatusCode"] == 128 + signal.SIGUSR1
    assert fake_api.post(f"{V}/containers/life/rename?name=renamed").status_code == 204
    assert fake_api.post(f"{V}/containers/renamed/start").status_code == 204
    assert fake_api.post(f"{V}/containers/renamed/restart?t=1").status_code == 204
    assert fake_api.post(f"{V}/containers/renamed/stop?t=1").status_code == 204
    assert fake_api.delete(f"{V}/containers/renamed").status_code == 204

    evs = [fake_engine.container_labels.attach(e) for e in fake_engine.store.read(after_seq=since, limit=10_000)
           if e.type == "container"]
    assert all(e.actor_id == cid for e in evs)
    assert [e.action for e in evs] == [
        "create", "start", "pause", "unpause", "kill", "die", "rename", "start",
        "kill", "die", "stop", "start", "restart", "kill", "die", "stop", "destroy"]
    for e in evs:
        assert e.attributes["image"] == "busybox" and e.attributes["app"] == "demo"
        assert e.attributes["name"] == ("life" if e.seq < evs[6].seq else "renamed")
        wire = e.to_docker()
        assert wire["Type"] == "container" and wire["Action"] == e.action and wire["Actor"]["ID"] == cid
        assert wire["status"] == e.action and wire["id"] == cid and wire["from"] == "busybox"
    assert [e.attributes["exitCode"] for e in evs if e.action == "die"] == ["138", "143", "143"]
    assert [e.attributes["signal"] for e in evs if e.action == "kill"] == ["10", "15", "15"]
    assert evs[6].attributes["oldName"] == "/life"
    assert fake_engine.store.query("SELECT COUNT(*) FROM containers")[0][0] == 0


def test_rebuilt_projection_equals_the_incremental_one(fake_api, fake_engine, host, image):
    run(fake_api, "running", Labels={"k": "v"})
    paused = run(fake_api, "paused")
    assert fake_api.post(f"{V}/containers/{paused}/pause").status_code == 204
    exited = run(fake_api, "exited", Cmd=["exit", "9"])
    assert wait(fake_api, exited)["StatusCode"] == 9
    assert fake_api.post(f"{V}/containers/exited/rename?name=exited2").status_code == 204
    create(fake_api, "created", HostConfig={"Memory": 32 << 20, "NetworkMode": "host"})
    create(fake_api, "broken", Cmd=["nosuch"])
    assert fake_api.post(f"{V}/containers/broken/start").status_code >= 400
    oom = run(fake_api, "oom", Cmd=["oom"])
    assert wait(fake_api, oom)["StatusCode"] == 137
    run(fake_api, "stopped")
    assert fake_api.post(f"{V}/containers/stopped/stop?t=0").status_code == 204
    assert fake_api.post(f"{V}/containers/stopped/start").status_code == 204
    assert fake_api.delete(f"{V}/containers/{run(fake_api, 'removed')}?force=1").status_code == 204
    auto = run(fake_api, "auto", Cmd=["true"], HostConfig={"AutoRemove": True})
    assert wait(fake_api, auto, "removed")["StatusCode"] == 0

    store = fake_engine.store
    before = snapshot(store.reader(), store.projectors)
    listed = fake_api.get(f"{V}/containers/json?all=1").get_json()
    assert len(before["containers"]) == 7 and len(listed) == 7
    assert rebuild(store) == store.last_seq
    assert snapshot(store.reader(), store.projectors) == before
    relisted = fake_api.get(f"{V}/containers/json?all=1").get_json()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "Status"} for r in rows]   # noqa: E731
    assert strip(relisted) == strip(listed)


def test_daemon_restart_reconciles_with_the_runtime(tmp_path, host):
    """Containers outlive the daemon: at the next start, exits that happened meanwhile are recorded
    (255 when conmon vanished without an exit file) and runc state nobody knows is deleted."""
    from app import create_app
    root = str(tmp_path / "root")
    eng = _engine(root, host)
    api = create_app(eng.config, eng).test_client()
    try:
        changes = quote('CMD ["sleep", "300"]')
        assert api.post(f"{V}/images/create?fromSrc=-&repo=busybox&changes={changes}",
                        data=_image_tar()).status_code == 200
        exits, vanishes, survives = (run(api, n) for n in ("exits", "vanishes", "survives"))
    finally:
        eng.close()
    host.exit(exits, 3)                 # while the daemon is away
    host.vanish(vanishes)
    stray = "f" * 64                    # runc state the store never heard of
    host.processes[stray] = FakeProcess(stray, "stray", 1, ["sleep"], str(tmp_path), Script(), status="running")
    os.makedirs(os.path.join(host.runc_root, stray))
    eng = _engine(root, host)
    api = create_app(eng.config, eng).test_client()
    try:
        assert inspect(api, exits)["State"]["ExitCode"] == 3
        assert inspect(api, vanishes)["State"]["ExitCode"] == 255
        assert inspect(api, vanishes)["State"]["Status"] == "exited"
        assert inspect(api, survives)["State"]["Running"]
        assert not host.runc_knows(stray)
        assert ("delete", stray) in host.calls
        assert actions(eng, exits)[-1] == "die" and actions(eng, survives)[-1] == "start"
        host.exit(survives, 0)          # and the new watcher sees exits again
        assert eventually(lambda: inspect(api, survives)["State"]["Status"] == "exited")
    finally:
        eng.close()


def test_docker_wording_for_rename_wait_and_unknown_image(fake_api, fake_engine, host, image):
    cid = run(fake_api, "same")
    r = fake_api.post(f"{V}/containers/same/rename?name=same")
    assert r.status_code == 400 and error(r) == "Renaming a container with the same name as its current name"
    other = create(fake_api, "other")
    r = fake_api.post(f"{V}/containers/same/rename?name=other")
    assert r.status_code == 409 and error(r).startswith('Error when allocating new name: Conflict. The container '
                                                        f'name "/other" is already in use by container "{other}"')
    r = fake_api.post(f"{V}/containers/nosuch/wait?condition=bogus")      # the condition is checked first
    assert r.status_code == 400 and error(r) == 'invalid condition: "bogus"'
    bad = create(fake_api, "bad", Cmd=["nosuch"])
    assert fake_api.post(f"{V}/containers/bad/start").status_code == 400
    r = fake_api.post(f"{V}/containers/bad/wait?condition=not-running")
    assert r.status_code == 200 and json.loads(r.data)["StatusCode"] == 127   # the refused start's code
    r = fake_api.post(f"{V}/containers/create", json={"Image": "nosuch"})
    assert r.status_code == 404 and error(r) == "No such image: nosuch:latest"
    assert cid and bad


def test_finish_without_an_exit_file_does_not_end_a_running_container(fake_api, fake_engine, host, image):
    """Regression: the exit watcher saw a previous run's exit file, lost the race to a restart (which
    removed that file), then called finish for the new run, recording die 255 and tearing it down."""
    cid = run(fake_api, "alive")
    fake_engine.containers.finish(cid)
    assert inspect(fake_api, cid)["State"]["Running"] is True
    assert "die" not in actions(fake_engine, cid)


def test_prune_removes_stopped_containers_with_filters(fake_api, fake_engine, host, image):
    keep_running = run(fake_api, "up")
    created = create(fake_api, "fresh", Labels={"tier": "web"})
    exited = run(fake_api, "done", Cmd=["exit", "3"], Labels={"tier": "db"})
    assert json.loads(fake_api.post(f"{V}/containers/done/wait").data)["StatusCode"] == 3
    r = fake_api.post(f"{V}/containers/prune", query_string={"filters": json.dumps({"label": ["tier=db"]})})
    assert r.status_code == 200 and json.loads(r.data)["ContainersDeleted"] == [exited]
    r = fake_api.post(f"{V}/containers/prune", query_string={"filters": json.dumps({"label!": ["tier=web"]})})
    assert json.loads(r.data) == {"ContainersDeleted": None, "SpaceReclaimed": 0}
    r = fake_api.post(f"{V}/containers/prune", query_string={"filters": json.dumps({"until": ["1h"]})})
    assert json.loads(r.data)["ContainersDeleted"] is None            # created less than an hour ago
    r = fake_api.post(f"{V}/containers/prune")
    body = json.loads(r.data)
    assert body["ContainersDeleted"] == [created] and isinstance(body["SpaceReclaimed"], int)
    assert [c["Id"] for c in json.loads(fake_api.get(f"{V}/containers/json?all=1").data)] == [keep_running]
    r = fake_api.post(f"{V}/containers/prune", query_string={"filters": json.dumps({"bogus": ["x"]})})
    assert r.status_code == 400 and "bogus" in error(r)
    prunes = [e for e in fake_engine.store.read(0, limit=10_000) if e.action == "prune"]
    assert len(prunes) == 4 and prunes[0].attributes == {"reclaimed": "0"}


def test_remove_and_start_racing_never_destroy_a_running_container(fake_api, fake_engine, host, image):
    """Review finding: rm checked the state outside the lock, so a start in between was destroyed
    while running (no die). Now either rm wins (the start is 404) or start wins (the rm is 409)."""
    import threading
    c = fake_engine.containers
    for i in range(15):
        cid = create(fake_api, f"race{i}", Cmd=["sleep", "30"])
        results = {}

        def start():
            try:
                c.start(cid)
                results["start"] = "ok"
            except Exception as err:        # noqa: BLE001 - recorded for the assertion below
                results["start"] = type(err).__name__

        def remove():
            try:
                c.remove(cid, force=False)
                results["rm"] = "ok"
            except Exception as err:        # noqa: BLE001
                results["rm"] = type(err).__name__

        threads = [threading.Thread(target=start), threading.Thread(target=remove)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        acts = actions(fake_engine, cid)
        if results["rm"] == "ok":
            assert results["start"] == "NotFound" and acts == ["create", "destroy"]
        else:
            assert results == {"start": "ok", "rm": "Conflict"} and acts == ["create", "start"]
            c.remove(cid, force=True)


def test_wait_next_exit_ends_when_the_container_is_removed(fake_api, fake_engine, host, image):
    import threading
    cid = create(fake_api, "never", Cmd=["sleep", "30"])
    out = {}
    t = threading.Thread(target=lambda: out.update(code=fake_engine.containers.wait_condition(
        cid, "next-exit", fake_engine.store.last_seq)))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()                                       # nothing has exited yet
    assert fake_api.delete(f"{V}/containers/never").status_code == 204
    t.join(5)
    assert not t.is_alive() and out == {"code": 0}            # moby's State.Wait returns on removal


def test_wait_gives_up_when_its_client_has_gone(fake_api, fake_engine, host, image):
    cid = create(fake_api, "lonely", Cmd=["sleep", "30"])
    started = time.monotonic()
    assert fake_engine.containers.wait_condition(cid, "next-exit", fake_engine.store.last_seq,
                                                 client_gone=lambda: True) is None
    assert time.monotonic() - started < 2


def test_a_failed_start_releases_attaches_waiting_for_it(fake_api, fake_engine, host, image):
    import threading
    cid = create(fake_api, "broken", Cmd=["nosuch"])
    out = {}
    c = fake_engine.containers
    t = threading.Thread(target=lambda: out.update(conn=c.attach_connection(c.reserve_attach(cid), lambda: False)))
    t.start()
    assert eventually(lambda: cid in c._attach_waiters)
    assert fake_api.post(f"{V}/containers/broken/start").status_code == 400
    t.join(3)
    assert not t.is_alive() and out == {"conn": None}


def test_storage_opt_is_refused_not_ignored(fake_api, fake_engine, image):
    r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", "HostConfig": {"StorageOpt": {"size": "1G"}}})
    assert r.status_code == 400 and "--storage-opt is supported only for overlay over xfs" in error(r)
    assert fake_engine.store.read(0, types=["container"]) == []
