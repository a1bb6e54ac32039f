"""Bad create bodies against a real daemon: each one is 400 (413 when too large) with moby's text, makes
no container and no event, and the daemon goes on serving — `docker ps -a` included, which a number
label used to break for every user. A label is stored once, not copied into every event."""
from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli

TYPE = "invalid JSON: json: cannot unmarshal "
BAD = [
    (b'{"Image":"busybox","Cmd":5}', 400, TYPE + "number into Go struct field CreateRequest.Cmd of type string"),
    (b'{"Image":"busybox","Labels":["a"]}', 400, TYPE + "array into Go struct field CreateRequest.Labels"),
    (b'{"Image":"busybox","Labels":{"a":1}}', 400, TYPE + "number into Go struct field CreateRequest.Labels"),
    (b'{"Image":"busybox","HostConfig":"x"}', 400, TYPE + "string into Go struct field CreateRequest.HostConfig"),
    (b'{"Image":"busybox","HostConfig":{"Memory":"abc"}}', 400, TYPE + "string into Go struct field "
                                                                       "HostConfig.HostConfig.Memory of type int64"),
    (b'{"Image":"busybox","HostConfig":{"Memory":1e30}}', 400, TYPE + "number 1e30 into Go struct field "
                                                                      "HostConfig.HostConfig.Memory of type int64"),
    (b'{"Image":"busybox","Env":{"A":"1"}}', 400, TYPE + "object into Go struct field CreateRequest.Env"),
    (b'{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"nofile","Soft":"x"}]}}', 400,
     TYPE + "string into Go struct field Ulimit.HostConfig.Ulimits.Soft of type int64"),
    (b'{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"nosuch","Soft":1,"Hard":1}]}}', 400,
     "invalid ulimit type: nosuch"),
    (b'{"Image":"busybox","HostConfig":{"ConsoleSize":["a","b"]}}', 400,
     TYPE + "string into Go struct field HostConfig.HostConfig.ConsoleSize of type uint"),
    (b'{"Image":"busybox","HostConfig":{"ConsoleSize":[70000,80]}}', 400, "invalid ConsoleSize"),
    (b'{"Image":"busybox","HostConfig":{"CpuShares":300000}}', 400, "the maximum allowed cpu-shares is 262144"),
    (b'{"Image":"busybox","HostConfig":{"CpuShares":1}}', 400, "the minimum allowed cpu-shares is 2"),
    (b'{"Image":"busybox","Tty":"yes"}', 400, TYPE + "string into Go struct field CreateRequest.Tty of type bool"),
    (b"[" * 100_000, 400, "invalid JSON: nesting deeper than 100 levels"),
    (b'{"Image":"busybox"', 400, "invalid JSON: unexpected EOF"),
    (b"", 400, "invalid JSON: got EOF while reading request body"),
    (b'{"Image":"busybox","HostConfig":{"Sysctls":{"net.x":"1"}}}', 400, "berth does not support HostConfig.Sysctls yet"),
    (b'{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}', 400,
     "invalid restart policy: unknown policy 'sometimes'"),
    (b'{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}', 400,
     "can't create 'AutoRemove' container with restart policy"),
    (b'{"Image":"busybox","Cmd":["true"],"Volumes":{"relative":{}}}', 400, "invalid mount path: 'relative' mount path must be absolute"),
    (b'{"Image":"busybox","HostConfig":{"Sysctls":{"net.ipv4.ip_forward":"1"}}}', 400,
     "berth does not support HostConfig.Sysctls yet"),
    (b'{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}}}}', 400,
     "berth does not support HostConfig.LogConfig.Config yet"),
]


def post(sock_path: str, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("localhost", timeout=30)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(sock_path)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def event_count(d) -> int:
    with sqlite3.connect(os.path.join(d.data_root, "berth.db")) as db:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def test_bad_bodies_are_refused_and_change_nothing(daemon, busybox, docker_client):
    docker_client.containers.create("busybox", ["true"], name="existing", labels={"team": "a"})
    before = event_count(daemon)
    for body, status, message in BAD:
        got_status, got = post(daemon.sock, "/v1.45/containers/create", body)
        assert (got_status, got["message"][:len(message)]) == (status, message), body[:80]
    assert event_count(daemon) == before
    assert [c.name for c in docker_client.containers.list(all=True)] == ["existing"]
    assert docker_client.ping()


def test_body_bound_is_413_and_a_daemon_flag(make_daemon, busybox_tar):
    d = make_daemon().start("--max-json-body", "64k")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        big = json.dumps({"Image": "busybox", "Labels": {"big": "x" * 100_000}}).encode()
        status, got = post(d.sock, "/v1.45/containers/create", big)
        assert status == 413 and "--max-json-body" in got["message"]
        status, _ = post(d.sock, "/v1.45/containers/create", b'{"Image":"busybox","Cmd":["true"]}')
        assert status == 201
    finally:
        client = docker.APIClient(base_url=d.host, version="1.45")
        for c in client.containers(all=True):
            client.remove_container(c["Id"], force=True)
        client.close()
        d.stop()


def test_a_large_label_is_stored_once_and_still_in_every_event(daemon, busybox, docker_client):
    big = "x" * 2_000_000
    c = docker_client.containers.create("busybox", ["true"], labels={"big": big, "team": "a"})
    for _ in range(3):
        c.start()
        c.wait()
    with sqlite3.connect(os.path.join(daemon.data_root, "berth.db")) as db:
        stored = db.execute("SELECT SUM(LENGTH(attributes)), SUM(LENGTH(COALESCE(payload, ''))) FROM events "
                            "WHERE stream = ?", (f"container:{c.id}",)).fetchone()
    assert stored[0] < 4000                        # no event's attributes hold the label
    assert 2_000_000 < stored[1] < 2_100_000       # the create payload holds it, once
    evs = list(docker_client.events(since=0, until=int(__import__("time").time()) + 1, decode=True,
                                    filters={"container": c.id, "label": "team=a"}))
    assert [e["Action"] for e in evs] == ["create"] + ["start", "die"] * 3
    assert all(e["Actor"]["Attributes"]["big"] == big and e["Actor"]["Attributes"]["name"] == c.name for e in evs)
    assert docker_client.containers.get(c.id).labels == {"big": big, "team": "a"}


@needs_docker_cli
def test_docker_ps_keeps_working_after_bad_labels(daemon, busybox):
    assert post(daemon.sock, "/v1.45/containers/create", b'{"Image":"busybox","Labels":{"a":1}}')[0] == 400
    assert docker_cli(daemon, "create", "--label", "a=1", "busybox", "true").returncode == 0
    r = docker_cli(daemon, "ps", "-a", "--format", "{{.Labels}}")
    assert r.returncode == 0 and r.stdout.strip() == "a=1", r.stderr


@pytest.mark.parametrize("flag, message", [
    (["--sysctl", "net.x=1"], "berth does not support HostConfig.Sysctls yet"),
    (["--restart", "always:3"], "maximum retry count can only be used with 'on-failure'"),
    (["--blkio-weight", "300"], "berth does not support HostConfig.BlkioWeight yet"),
    (["--cpuset-cpus", "0-999"], "Requested CPUs are not available - requested 0-999, available: "),
])
@needs_docker_cli
def test_the_docker_cli_is_told_what_is_not_supported(daemon, busybox, flag, message):
    r = docker_cli(daemon, "run", *flag, "busybox", "true")
    assert r.returncode != 0 and message in r.stderr
    assert docker_cli(daemon, "ps", "-aq").stdout.strip() == ""


def test_a_platform_berth_cannot_run_is_refused(daemon, busybox):
    for platform in ("windows", "linux/s390x"):
        status, got = post(daemon.sock, f"/v1.45/containers/create?platform={platform}", b'{"Image":"busybox"}')
        assert status == 400 and f'berth does not support platform "{platform}" yet' in got["message"]
    assert post(daemon.sock, "/v1.45/containers/create?platform=linux", b'{"Image":"busybox","Cmd":["true"]}')[0] == 201
