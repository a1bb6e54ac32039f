"""Exec endpoints' validation and errors through the Flask test client on the fake runtime. Running
exec processes needs conmon and runc: tests/integration/test_exec.py."""
from __future__ import annotations

import time

from app.runtime.containers.exec import replace_or_append_env
from tests.api.test_containers_api import V, fake_api, fake_engine, host, image, inspect, run  # noqa: F401


def test_exec_create_validates_and_records(fake_api, image):
    cid = run(fake_api, "ex1", Cmd=["sleep", "300"])
    assert inspect(fake_api, cid)["ExecIDs"] is None
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": []})
    assert (r.status_code, r.get_json()["message"]) == (400, "No exec command specified")
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": "ls"})
    assert r.status_code == 400 and "cannot unmarshal string into Go struct field ExecOptions.Cmd" in r.get_json()["message"]
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": ["ls"], "DetachKeys": "ctrl-"})
    assert r.get_json()["message"] == "Invalid escape keys (ctrl-) provided"
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": ["ls"], "User": "nosuch"})
    assert (r.status_code, r.get_json()["message"]) == (400, "unable to find user nosuch: no matching entries in passwd file")
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": ["ls", "-l"], "DetachKeys": "ctrl-x,y", "Tty": True})
    assert r.status_code == 201
    eid = r.get_json()["Id"]
    assert inspect(fake_api, cid)["ExecIDs"] == [eid]
    info = fake_api.get(f"{V}/exec/{eid}/json").get_json()
    assert info == {"ID": eid, "Running": False, "ExitCode": None, "ProcessConfig": {
        "tty": True, "entrypoint": "ls", "arguments": ["-l"], "privileged": False, "user": ""},
        "OpenStdin": False, "OpenStderr": False, "OpenStdout": False, "CanRemove": False, "ContainerID": cid,
        "DetachKeys": "GHk=", "Pid": 0}
    events = fake_api.get(f"{V}/events?since=0&until={time.time():.3f}&filters=" + '{"event":["exec_create"]}').data.decode()
    assert '"Action":"exec_create: ls -l"' in events and f'"execID":"{eid}"' in events
    r = fake_api.post(f"{V}/exec/nope/start", json={})
    assert (r.status_code, r.get_json()["message"]) == (404, "No such exec instance: nope")
    r = fake_api.post(f"{V}/exec/nope/resize?h=1&w=2")
    assert r.status_code == 404
    r = fake_api.post(f"{V}/exec/{eid}/resize?h=-1&w=2")
    assert r.status_code == 400
    fake_api.post(f"{V}/containers/ex1/pause")
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": ["ls"]})
    assert (r.status_code, r.get_json()["message"]) == (409, "Container ex1 is paused, unpause the container before exec")
    r = fake_api.post(f"{V}/exec/{eid}/start", json={"Detach": True})
    assert (r.status_code, r.get_json()["message"]) == (409, f"Container {cid} is paused, unpause the container before exec")
    fake_api.post(f"{V}/containers/ex1/unpause")
    fake_api.post(f"{V}/containers/ex1/kill")
    r = fake_api.post(f"{V}/containers/ex1/exec", json={"Cmd": ["ls"]})
    assert (r.status_code, r.get_json()["message"]) == (409, f"container {cid} is not running")
    r = fake_api.post(f"{V}/exec/{eid}/start", json={})
    assert (r.status_code, r.get_json()["message"]) == (409, f"container {cid} is not running")
    assert fake_api.get(f"{V}/exec/{eid}/json").status_code == 200       # the log keeps it …
    fake_api.delete(f"{V}/containers/ex1")
    r = fake_api.get(f"{V}/exec/{eid}/json")                              # … until the container goes
    assert (r.status_code, r.get_json()["message"]) == (404, f"No such exec instance: {eid}")


def test_replace_or_append_env_is_mobys():
    assert replace_or_append_env(["PATH=/bin", "HOSTNAME=h", "A=1"], ["A=2", "B=3", "HOSTNAME"]) == \
        ["PATH=/bin", "A=2", "B=3"]
    assert replace_or_append_env(["A=1"], ["B", "A=", "C=x=y"]) == ["A=", "C=x=y"]
