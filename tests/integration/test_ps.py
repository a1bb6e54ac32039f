"""`ps` and `port` against a real daemon: our CLI, and the official docker CLI when it is installed."""
import json
import re
import shutil

import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


@pytest.fixture
def two(daemon, busybox):
    """`first` (exited, wrote 6 bytes) then `second` (running); returns their IDs."""
    daemon.cli("run", "--name", "first", "busybox", "sh", "-c", "echo hello > /data.txt", check=True)
    second = daemon.cli("run", "-d", "--name", "second", "busybox", "sleep", "60", check=True).stdout.strip()
    first = daemon.cli("ps", "-a", "-q", "--no-trunc", "--filter", "name=^first$", check=True).stdout.strip()
    return first, second


def test_ps_latest_size_filters_and_port(daemon, busybox, two):
    first, second = two
    lines = daemon.cli("ps", "-l", check=True).stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2 and lines[1].startswith(second[:12] + "   busybox   \"sleep 60\"")
    assert lines[1].endswith("   second")
    assert daemon.cli("ps", "-n", "5", "-q", check=True).stdout.split() == [second[:12], first[:12]]
    assert daemon.cli("ps", "-q", check=True).stdout.split() == [second[:12]]          # running only

    out = daemon.cli("ps", "-a", "-s", check=True).stdout.splitlines()
    assert out[0].rstrip().endswith("NAMES     SIZE")
    first_line = next(line for line in out[1:] if " first " in line)
    assert re.search(r"   first     6B \(virtual [\d.]+[kM]B\)$", first_line), first_line
    assert re.search(r"Exited \(0\) .* ago", first_line)

    fmt = ["--format", "{{.Names}}"]
    assert daemon.cli("ps", "-a", "--filter", "ancestor=busybox", *fmt, check=True).stdout.split() == \
        ["second", "first"]
    assert daemon.cli("ps", "-a", "--filter", f"ancestor={busybox[7:19]}", *fmt, check=True).stdout.split() == \
        ["second", "first"]
    assert daemon.cli("ps", "-a", "--filter", "ancestor=nosuch", *fmt, check=True).stdout == ""
    assert daemon.cli("ps", "-a", "--filter", "before=second", *fmt, check=True).stdout.split() == ["first"]
    assert daemon.cli("ps", "-a", "-f", "since=first", "-f", "status=running", *fmt,
                      check=True).stdout.split() == ["second"]
    r = daemon.cli("ps", "--filter", "before=nosuch")
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: No such container: nosuch"
    r = daemon.cli("ps", "-a", "--format", "table {{.Names}}\t{{.Size}}")     # .Size asks for sizes
    assert r.stdout.splitlines()[0].split() == ["NAMES", "SIZE"] and "6B (virtual " in r.stdout
    # inspect -s: the same two sizes, as numbers; without -s they are absent
    image_size = json.loads(daemon.cli("image", "inspect", "busybox", check=True).stdout)[0]["Size"]
    sized = json.loads(daemon.cli("inspect", "-s", "first", check=True).stdout)[0]
    assert (sized["SizeRw"], sized["SizeRootFs"]) == (6, 6 + image_size)
    assert "SizeRw" not in json.loads(daemon.cli("inspect", "first", check=True).stdout)[0]

    r = daemon.cli("port", "second")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = daemon.cli("port", "first")
    assert (r.returncode, r.stdout) == (0, "")
    r = daemon.cli("port", "nosuch")
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: No such container: nosuch"
    r = daemon.cli("port", "second", "80/tcp")
    assert r.returncode == 1 and r.stderr.strip() == "no public port '80/tcp' published for second"


def _without_ages(text):
    """The two CLIs render at different instants, so a second boundary between them
    changes "Less than a second ago" into "1 second ago"; everything else must match."""
    return re.sub(r'"(RunningFor|Status)":"[^"]*"', r'"\1":"*"', text)


@needs_docker_cli
def test_docker_cli_ps_filters_and_formats(daemon, busybox, two):
    r = docker_cli(daemon, "ps", "-a", "--filter", "ancestor=busybox", "--format", "{{.Names}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["second", "first"]
    # the columns docker renders from our summaries are the ones our CLI renders
    fmt = "{{.ID}}|{{.Image}}|{{.Command}}|{{.Names}}|{{.State}}|{{.Size}}|{{.Labels}}|{{.Ports}}"
    theirs = docker_cli(daemon, "ps", "-a", "-s", "--format", fmt)
    ours = daemon.cli("ps", "-a", "-s", "--format", fmt, check=True)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.stdout == theirs.stdout and "|6B (virtual " in ours.stdout
    r = docker_cli(daemon, "ps", "-a", "-f", "before=second", "-q")
    assert r.stdout.split() == [daemon.cli("ps", "-a", "-q", "-f", "name=first", check=True).stdout.strip()]
    r = docker_cli(daemon, "port", "second")
    assert (r.returncode, r.stdout) == (0, "")
    r = docker_cli(daemon, "inspect", "-s", "-f", "{{.SizeRw}}", "first")
    assert (r.returncode, r.stdout) == (0, "6\n")
    # `--format json` is Go's json.Marshal (HTML escaped); `{{json .}}` is not
    daemon.cli("create", "--name", "html", "busybox", "sh", "-c", "echo a > /b & true", check=True)
    for fmt in ("json", "{{json .Command}}"):
        theirs = docker_cli(daemon, "ps", "-a", "--format", fmt)
        assert theirs.returncode == 0, theirs.stderr
        ours = daemon.cli("ps", "-a", "--format", fmt, check=True).stdout
        assert _without_ages(ours) == _without_ages(theirs.stdout)
    ours = daemon.cli("ps", "-a", "--format", "json", check=True).stdout
    assert "echo a \\u003e /b \\u0026" in ours and "{{json" not in ours
