import json
import time

import pytest

from app.events.model import NewEvent


def test_ping_get_and_head_headers(api):
    for method in (api.get, api.head):
        r = method("/_ping")
        assert r.status_code == 200
        assert r.headers["Api-Version"] == "1.45"
        assert r.headers["Ostype"] == "linux"
        assert r.headers["Docker-Experimental"] == "false"
        assert r.headers["Builder-Version"] == "1"
        assert r.headers["Swarm"] == "inactive"
        assert r.headers["Server"].startswith("berth/")
        assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert api.get("/_ping").data == b"OK"
    assert api.get("/v1.45/_ping").data == b"OK"
    assert api.get("/v1.24/_ping").status_code == 200


def test_common_headers_on_every_response_including_errors(api):
    for path in ("/version", "/info", "/nope", "/v1.99/version"):
        r = api.get(path)
        assert r.headers["Api-Version"] == "1.45", path
        assert r.headers["Ostype"] == "linux"
        assert r.headers["Server"].startswith("berth/")


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41", "/v1.45"])
def test_version(api, prefix):
    r = api.get(prefix + "/version")
    assert r.status_code == 200
    body = r.get_json()
    assert body["ApiVersion"] == "1.45" and body["MinAPIVersion"] == "1.24"
    assert body["Os"] == "linux" and body["Version"] == "0.1.0"
    assert body["GoVersion"].startswith("python3.")
    assert body["KernelVersion"]
    assert body["Components"][0]["Name"] == "Engine"


def test_version_out_of_range(api):
    r = api.get("/v1.46/version")
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/json"
    assert r.get_json() == {"message": "client version 1.46 is too new. Maximum supported API version is 1.45"}
    r = api.get("/v1.23/info")
    assert r.status_code == 400
    assert r.get_json()["message"] == ("client version 1.23 is too old. Minimum supported API version is 1.24, "
                                       "please upgrade your client to a newer version")


def test_unknown_route_and_wrong_method_are_json_404(api):
    for r in (api.get("/nope"), api.get("/v1.45/nope/deeper"), api.post("/version"), api.delete("/_ping")):
        assert r.status_code == 404
        assert r.headers["Content-Type"] == "application/json"
        assert r.get_json() == {"message": "page not found"}


def test_info_counts_come_from_projections(api, engine):
    store = engine.store
    for i, state in enumerate(["running", "running", "paused", "exited", "created"]):
        cid = f"{i}" * 64
        store.append([NewEvent("container", "create", cid, {"name": f"c{i}", "image": "busybox"})])
        if state in ("running", "paused", "exited"):
            store.append([NewEvent("container", "start", cid, {"name": f"c{i}"})])
        if state == "paused":
            store.append([NewEvent("container", "pause", cid, {"name": f"c{i}"})])
        if state == "exited":
            store.append([NewEvent("container", "die", cid, {"exitCode": "0"})])
    store.append([NewEvent("image", "import", "sha256:" + "a" * 64, {}, payload={"size": 1})])
    info = api.get("/info").get_json()
    assert (info["Containers"], info["ContainersRunning"], info["ContainersPaused"], info["ContainersStopped"]) == \
        (5, 2, 1, 2)
    assert info["Images"] == 1
    assert info["Driver"] == "overlay2" and info["CgroupDriver"] == "cgroupfs"
    assert info["CgroupVersion"] in ("1", "2")
    assert info["DefaultRuntime"] == "runc"
    assert info["DockerRootDir"] == engine.data_root
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["Swarm"]["LocalNodeState"] == "inactive" and info["Swarm"]["ControlAvailable"] is False
    for key in ("OperatingSystem", "KernelVersion", "Name", "ServerVersion", "ID", "Plugins", "RegistryConfig"):
        assert info[key], key
    assert info["Warnings"] == []


def _lines(resp):
    return [json.loads(line) for line in resp.data.decode().splitlines() if line.strip()]


def test_events_replay_shape_and_until_closes(api, engine):
    cid = "c" * 64
    engine.store.append([NewEvent("container", "create", cid, {"image": "busybox", "name": "web", "x": "1"})])
    engine.store.append([NewEvent("image", "tag", "sha256:" + "b" * 64, {"name": "busybox:latest"})])
    engine.store.append([NewEvent("volume", "create", "data", {"driver": "local"})])
    r = api.get(f"/v1.45/events?since=0&until={time.time():.9f}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    events = _lines(r)
    assert [(e["Type"], e["Action"]) for e in events] == [("container", "create"), ("image", "tag"),
                                                          ("volume", "create")]
    c = events[0]
    assert list(c) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert (c["status"], c["id"], c["from"]) == ("create", cid, "busybox")
    assert c["Actor"] == {"ID": cid, "Attributes": {"image": "busybox", "name": "web", "x": "1"}}
    assert c["scope"] == "local" and c["time"] == c["timeNano"] // 10**9
    assert (events[1]["status"], events[1]["id"]) == ("tag", "sha256:" + "b" * 64)
    assert "status" not in events[2] and "from" not in events[2]


def test_events_filters_and_time_window(api, engine):
    store = engine.store
    first = store.append([NewEvent("container", "start", "a" * 64, {"name": "one", "image": "busybox"})])[0]
    store.append([NewEvent("container", "die", "a" * 64, {"name": "one", "image": "busybox", "exitCode": "0"})])
    third = store.append([NewEvent("container", "start", "b" * 64, {"name": "two", "image": "alpine",
                                                                  "tier": "web"})])[0]
    now = time.time()

    def get(**params):
        query = "&".join(f"{k}={v}" for k, v in {"since": "0", "until": f"{now:.9f}", **params}.items())
        r = api.get("/events?" + query)
        assert r.status_code == 200, r.data
        return [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in _lines(r)]

    assert get(filters=json.dumps({"event": ["die"]})) == [("die", "one")]
    assert get(filters=json.dumps({"container": {"two": True}})) == [("start", "two")]
    assert get(filters=json.dumps({"container": ["aaaa"]})) == [("start", "one"), ("die", "one")]
    assert get(filters=json.dumps({"image": ["alpine"]})) == [("start", "two")]
    assert get(filters=json.dumps({"label": ["tier=web"]})) == [("start", "two")]
    assert get(filters=json.dumps({"type": ["volume"]})) == []
    assert get(since=f"{third.time_nano // 10**9}.{third.time_nano % 10**9:09d}") == [("start", "two")]
    assert get(until=f"{first.time_nano // 10**9}.{first.time_nano % 10**9:09d}") == [("start", "one")]


@pytest.mark.parametrize("query,message", [
    ("since=yesterday", "invalid value for 'since'"),
    ("until=12x", "invalid value for 'until'"),
    ("filters={bad", "invalid filter"),
    ('filters={"nope":["x"]}', "invalid filter 'nope'"),
    ("since=200&until=100", "cannot be after until time"),
])
def test_events_bad_input_is_400(api, engine, query, message):
    before = engine.store.last_seq
    r = api.get("/events?" + query)
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/json"
    assert message in r.get_json()["message"]
    assert engine.store.last_seq == before


def test_internal_bookkeeping_events_are_not_streamed(api, engine):
    engine.store.append([NewEvent("network", "ipam-allocate", "n1", {"ip": "172.30.0.2"}),
                         NewEvent("network", "create", "n1", {"name": "br", "type": "bridge"})])
    r = api.get(f"/events?since=0&until={time.time():.9f}")
    assert [e["Action"] for e in _lines(r)] == ["create"]


def test_containers_list_from_projection(api, engine):
    store = engine.store
    store.append([NewEvent("container", "create", "a" * 64, {"name": "up", "image": "busybox"},
                           payload={"config": {"Cmd": ["sleep", "9"]}, "labels": {"t": "1"},
                                    "command": ["sleep", "9"]})])
    store.append([NewEvent("container", "start", "a" * 64, {"name": "up"}, payload={"pid": 1})])
    store.append([NewEvent("container", "create", "b" * 64, {"name": "new", "image": "busybox"})])
    running = api.get("/containers/json").get_json()
    assert [c["Names"] for c in running] == [["/up"]]
    assert running[0]["Command"] == "sleep 9" and running[0]["State"] == "running"
    assert running[0]["Status"].startswith("Up ")
    everything = api.get("/containers/json?all=1").get_json()
    assert sorted(c["Names"][0] for c in everything) == ["/new", "/up"]
    assert api.get('/containers/json?all=1&filters={"label":["t=1"]}').get_json()[0]["Id"] == "a" * 64
    assert api.get("/containers/json?all=maybe").status_code == 400
    assert api.get('/containers/json?filters={"status":["sleeping"]}').status_code == 400
