"""Our CLI, docker-py and the official docker CLI against a real daemon."""
import json
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import CLI, ROOT, docker_cli, needs_docker_cli


# ------------------------------------------------------------------------------------------ our CLI

def test_cli_version(daemon):
    r = daemon.cli("version", check=True)
    assert "Client:" in r.stdout and "Server: berth Engine" in r.stdout
    assert "API version:      1.45 (minimum version 1.24)" in r.stdout
    r = daemon.cli("version", "--format", "{{.Server.ApiVersion}} {{.Client.Version}}", check=True)
    assert r.stdout.strip() == "1.45 0.1.0"


def test_cli_info(daemon):
    r = daemon.cli("info", check=True)
    assert " Containers: 0" in r.stdout
    assert " Storage Driver: overlay2" in r.stdout
    assert f" Docker Root Dir: {daemon.data_root}" in r.stdout
    r = daemon.cli("info", "-f", "{{.Driver}} {{.DefaultRuntime}} {{json .Swarm.LocalNodeState}}", check=True)
    assert r.stdout.strip() == 'overlay2 runc "inactive"'


def test_cli_events_replay_filters_and_formats(daemon):
    until = f"{time.time():.3f}"
    r = daemon.cli("events", "--since", "0", "--until", until, check=True)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and " daemon start " in lines[0] and "(name=" in lines[0]
    r = daemon.cli("events", "--since", "0", "--until", until, "--format", "{{.Type}} {{.Action}}", check=True)
    assert r.stdout.strip() == "daemon start"
    r = daemon.cli("events", "--since", "0", "--until", until, "--format", "{{json .}}", check=True)
    event = json.loads(r.stdout)
    assert event["Type"] == "daemon" and event["Action"] == "start" and event["scope"] == "local"
    r = daemon.cli("events", "--since", "1h", "--until", until, "--filter", "type=container", check=True)
    assert r.stdout == ""
    r = daemon.cli("events", "--since", "10m", "--until", "0s", "-f", "event=start", "--format", "json", check=True)
    assert json.loads(r.stdout)["Action"] == "start"


def test_cli_events_bad_input(daemon):
    r = daemon.cli("events", "--since", "yesterday")
    assert r.returncode == 1 and "invalid value for --since" in r.stderr and r.stdout == ""
    r = daemon.cli("events", "--since", "0", "--until", "0s", "--filter", "bogus=1")
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: invalid filter 'bogus'"
    r = daemon.cli("events", "--filter", "novalue")
    assert r.returncode == 1 and "bad format of filter" in r.stderr
    r = daemon.cli("events", "--since", "0", "--until", "0s", "--format", "{{.Type")
    assert r.returncode == 1 and "template" in r.stderr
    assert daemon.cli("version", check=True).returncode == 0  # the daemon keeps serving


def test_cli_without_daemon(workdir):
    host = f"unix://{workdir}/nothing.sock"
    r = subprocess.run([sys.executable, CLI, "-H", host, "version"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert f"Cannot connect to the berth daemon at {host}. Is the daemon running?" in r.stderr
    r = subprocess.run([sys.executable, CLI, "info"], capture_output=True, text=True, cwd=ROOT,
                       env={"BERTH_HOST": host, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1
    assert r.stderr.strip() == f"Cannot connect to the berth daemon at {host}. Is the daemon running?"


def test_cli_help_for_every_command():
    top = subprocess.run([sys.executable, CLI, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert top.returncode == 0
    for command in ("version", "info", "events", "daemon", "admin", "help"):
        assert command in top.stdout
        for argv in ([command, "--help"], ["help", command]):
            r = subprocess.run([sys.executable, CLI, *argv], capture_output=True, text=True, cwd=ROOT)
            assert r.returncode == 0 and "usage:" in r.stdout, (argv, r.stderr)
    r = subprocess.run([sys.executable, CLI, "help", "nosuch"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "unknown command" in r.stderr


def test_cli_does_not_import_flask_or_daemon_code():
    code = ("import sys; sys.argv=['cli.py','--help']; import runpy\n"
            "try:\n runpy.run_path('cli.py', run_name='__main__')\nexcept SystemExit: pass\n"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('flask','werkzeug','cheroot','sqlite3','sqlite_utils',"
            "'marshmallow') or m in ('app.engine','app.daemon','app.events.store','app.server')]\n"
            "print('BAD', bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "BAD []" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------------------------------ docker-py

def test_docker_py_version_info_ping(docker_client):
    assert docker_client.ping() is True
    version = docker_client.version()
    assert version["ApiVersion"] == "1.45" and version["Version"] == "0.1.0"
    assert docker_client.api.api_version == "1.45"
    info = docker_client.info()
    assert info["Containers"] == 0 and info["Images"] == 0 and info["Driver"] == "overlay2"


def test_docker_py_events_since_until(docker_client):
    now = time.time()
    events = list(docker_client.events(decode=True, since=0, until=int(now) + 1))
    assert [(e["Type"], e["Action"]) for e in events] == [("daemon", "start")]
    filtered = list(docker_client.events(decode=True, since=0, until=int(now) + 1, filters={"type": "container"}))
    assert filtered == []


def test_docker_py_low_level_api_and_errors(daemon):
    import docker
    api = docker.APIClient(base_url=daemon.host, version="1.41")
    assert api.version()["ApiVersion"] == "1.45"     # served under /v1.41/
    assert api.ping() is True
    with pytest.raises(docker.errors.APIError) as err:
        api._result(api._get(api._url("/nosuchthing")), json=True)
    assert err.value.response.status_code == 404
    assert "page not found" in str(err.value)
    api.close()


# ------------------------------------------------------------------------------------------ docker CLI

@needs_docker_cli
def test_docker_cli_version_info_events(daemon):
    r = docker_cli(daemon, "version")
    assert r.returncode == 0, r.stderr
    assert "Server: berth Engine" in r.stdout and "1.45 (minimum version 1.24)" in r.stdout
    r = docker_cli(daemon, "info")
    assert r.returncode == 0, r.stderr
    assert " Containers: 0" in r.stdout and "Storage Driver: overlay2" in r.stdout
    assert r.stderr.strip() == ""
    r = docker_cli(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1))
    assert r.returncode == 0, r.stderr
    assert " daemon start " in r.stdout
    r = docker_cli(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                   "--filter", "type=daemon", "--format", "{{.Type}}/{{.Action}}")
    assert r.stdout.strip() == "daemon/start"
