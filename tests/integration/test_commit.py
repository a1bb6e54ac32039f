"""docker commit under runc: the chapter's example from docker-py, the docker CLI and ours."""
import shutil
import time

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli

pytestmark = pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")),
                                reason="runc and conmon are needed")


def test_commit_docker_py(docker_client, busybox):
    api = docker_client.api
    c = docker_client.containers.run("busybox", ["sh", "-c", "touch /new-file; rm /bin/ls; mkdir -p /d; "
                                                "echo hi > /d/f; sleep 60"], detach=True)
    time.sleep(1)
    since = int(time.time()) - 1
    img = c.commit("commit", "test", author="Joe Bloggs", message="Comment", changes=["ENV A=b", "CMD [\"cat\", \"/d/f\"]"])
    assert img.id.startswith("sha256:")
    attrs = api.inspect_image("commit:test")
    assert attrs["Author"] == "Joe Bloggs" and attrs["Comment"] == "Comment"
    assert "A=b" in attrs["Config"]["Env"] and attrs["Config"]["Cmd"] == ["cat", "/d/f"]
    assert len(attrs["RootFS"]["Layers"]) == 2
    hist = api.history("commit:test")
    assert hist[0]["Comment"] == "Comment" and hist[0]["Size"] > 0
    assert docker_client.containers.run("commit:test", remove=True) == b"hi\n"
    out = docker_client.containers.run("commit:test", ["sh", "-c", "ls /new-file; test -e /bin/ls || echo gone; "
                                                                  "test -e /etc/hostname && echo mounted"],
                                       remove=True)
    assert out == b"/new-file\ngone\nmounted\n"
    c.reload()
    assert c.status == "running"
    events = [(e["Type"], e["Action"]) for e in api.events(since=since, until=int(time.time()) + 1, decode=True)]
    assert ("container", "pause") in events and ("container", "unpause") in events
    assert ("container", "commit") in events and ("image", "tag") in events
    # pause=false: no pause event
    since = int(time.time())
    api.commit(c.id, "nopause", pause=False)
    events = [(e["Type"], e["Action"]) for e in api.events(since=since, until=int(time.time()) + 1, decode=True,
                                                             filters={"container": c.id})]
    assert ("container", "pause") not in events
    c.remove(force=True)


def test_commit_bad_input_makes_nothing(docker_client, busybox):
    api = docker_client.api
    c = docker_client.containers.create("busybox", ["true"])
    before = len(api.images(all=True))
    with pytest.raises(docker.errors.APIError) as err:
        api.commit(c.id, "Bad/Repo")
    assert err.value.response.status_code == 400 and "invalid reference format" in str(err.value)
    with pytest.raises(docker.errors.APIError) as err:
        api.commit(c.id, "ok", changes=["BOGUS x"])
    assert err.value.response.status_code == 400 and "BOGUS is not a valid change command" in str(err.value)
    with pytest.raises(docker.errors.NotFound):
        api.commit("no-such-container", "ok")
    assert len(api.images(all=True)) == before
    # a stopped container commits too; its unchanged fs is an empty layer
    img = api.commit(c.id, "same")
    assert len(api.inspect_image(img["Id"])["RootFS"]["Layers"]) == 1
    c.remove()


@needs_docker_cli
def test_commit_docker_cli_chapter_example(daemon, busybox):
    cid = docker_cli(daemon, "run", "-d", "busybox", "touch", "/new-file").stdout.strip()
    docker_cli(daemon, "wait", cid)
    r = docker_cli(daemon, "commit", "-a", "Joe Bloggs", "-m", "Comment", cid, "commit:test")
    assert r.returncode == 0 and r.stdout.strip().startswith("sha256:"), r.stderr
    r = docker_cli(daemon, "run", "--rm", "commit:test", "ls", "/new-file")
    assert r.returncode == 0 and r.stdout == "/new-file\n", r.stderr
    r = docker_cli(daemon, "inspect", "-f", "{{.Author}}", "commit:test")
    assert r.stdout == "Joe Bloggs\n"
    r = docker_cli(daemon, "commit", "-c", "NOPE x", cid, "x:y")
    assert r.returncode != 0 and "NOPE is not a valid change command" in r.stderr
    docker_cli(daemon, "rm", cid)


def test_commit_our_cli(daemon, busybox):
    cid = daemon.cli("run", "-d", "busybox", "touch", "/new-file", check=True).stdout.strip()
    daemon.cli("wait", cid, check=True)
    r = daemon.cli("commit", "-a", "Joe Bloggs", "-m", "Comment", "-c", "ENV X=1", "-p=false", cid, "commit:test",
                   check=True)
    assert r.stdout.strip().startswith("sha256:")
    assert daemon.cli("run", "--rm", "commit:test", "ls", "/new-file", check=True).stdout == "/new-file\n"
    assert daemon.cli("inspect", "-f", "{{.Author}}", "commit:test", check=True).stdout == "Joe Bloggs\n"
    r = daemon.cli("commit", cid, "Bad:Ref:x")
    assert r.returncode == 1 and "invalid reference format" in r.stderr
    daemon.cli("rm", cid, check=True)
