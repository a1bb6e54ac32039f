"""GET /containers/json (docker ps) through the Flask test client: moby's filters, limit, size, errors.

Containers are made as a fake runtime would: `container` create/start/die/pause events appended to the
store directly (the projection moves, no runc involved).
"""
import json
import os
import re
import time

import pytest

from app.events.model import NewEvent
from tests.tarutil import tar_bytes as _tar


@pytest.fixture
def image(api):
    """busybox:latest imported from a one-file tar; its image ID."""
    r = api.post("/v1.45/images/create?fromSrc=-&repo=busybox:latest", data=_tar({"bin/sh": b"#!" * 50}))
    assert r.status_code == 200, r.data
    return json.loads(r.data.decode().strip().splitlines()[-1])["status"]


def add(engine, n: int, state: str = "running", *, name: str | None = None, image: str = "busybox",
        image_id: str = "", labels: dict | None = None, code: int = 0) -> str:
    """Container number n (ID = that digit × 64) in `state`; created in call order."""
    cid = f"{n:x}" * 64 if n < 16 else f"{n:064x}"
    name = name or f"c{n}"
    events = [NewEvent("container", "create", cid, {"name": name, "image": image, **(labels or {})},
                       payload={"image_id": image_id, "labels": labels or {}, "command": ["sleep", "9"]})]
    if state in ("running", "paused", "exited"):
        events.append(NewEvent("container", "start", cid, {"name": name}, payload={"pid": 100 + n}))
    if state == "paused":
        events.append(NewEvent("container", "pause", cid, {"name": name}))
    if state == "exited":
        events.append(NewEvent("container", "die", cid, {"name": name, "exitCode": str(code)}))
    for ev in events:
        engine.store.append([ev])
    return cid


def names(api, query: str = "", status: int = 200) -> list[str]:
    r = api.get("/v1.45/containers/json" + query)
    assert r.status_code == status, r.data
    return [c["Names"][0][1:] for c in r.get_json()]


def error(api, query: str, status: int) -> str:
    r = api.get("/v1.45/containers/json" + query)
    assert r.status_code == status, r.data
    return r.get_json()["message"]


def filters(**kw) -> str:
    return "filters=" + json.dumps({k.replace("_", "-"): v for k, v in kw.items()})


@pytest.fixture
def mixed(engine):
    """c1 running, c2 exited (3), c3 created, c4 paused, c5 exited (0): created in that order."""
    add(engine, 1, "running", labels={"tier": "web", "team": "a"})
    add(engine, 2, "exited", code=3, labels={"tier": "db"})
    add(engine, 3, "created")
    add(engine, 4, "paused")
    add(engine, 5, "exited", code=0)


def test_default_lists_running_newest_first_all_lists_every_state(api, mixed):
    assert names(api) == ["c4", "c1"]
    assert names(api, "?all=1") == ["c5", "c4", "c3", "c2", "c1"]


def test_summary_shape_key_order_and_status_texts(api, engine, mixed):
    r = api.get("/v1.45/containers/json?all=true")
    assert r.headers["Content-Type"] == "application/json" and r.data.endswith(b"]\n")
    rows = {c["Names"][0]: c for c in r.get_json()}
    c1 = rows["/c1"]
    assert list(c1) == ["Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels", "State",
                        "Status", "HostConfig", "NetworkSettings", "Mounts"]
    assert c1["Id"] == "1" * 64 and c1["Command"] == "sleep 9" and c1["Labels"] == {"team": "a", "tier": "web"}
    assert c1["Ports"] == [] and c1["Mounts"] == [] and c1["HostConfig"] == {"NetworkMode": "default"}
    assert abs(c1["Created"] - time.time()) < 60
    # a loaded machine may take a second between fixture and request
    age = r"(Less than a second|1 second|\d seconds)"
    assert re.fullmatch(f"Up {age}", c1["Status"]) and c1["State"] == "running"
    assert re.fullmatch(f"Up {age} \\(Paused\\)", rows["/c4"]["Status"])
    assert re.fullmatch(fr"Exited \(3\) {age} ago", rows["/c2"]["Status"])
    assert rows["/c3"]["Status"] == "Created" and rows["/c3"]["Labels"] == {}
    assert "SizeRw" not in c1 and "SizeRootFs" not in c1


def test_limit_and_latest_include_every_state(api, mixed):
    assert names(api, "?limit=1") == ["c5"]                 # -l: the latest, whatever its state
    assert names(api, "?limit=3") == ["c5", "c4", "c3"]
    assert names(api, "?limit=0") == ["c4", "c1"]           # 0 and -1 mean no limit
    assert names(api, "?limit=2&" + filters(label=["tier"])) == ["c2", "c1"]   # limit after filtering
    assert names(api, "?limit=1&" + filters(status=["running"])) == ["c1"]
    assert error(api, "?limit=x", 400) == 'strconv.Atoi: parsing "x": invalid syntax'
    assert error(api, "?limit=-", 400) == 'strconv.Atoi: parsing "-": invalid syntax'
    assert names(api, "?limit=-1") == ["c4", "c1"]


def test_id_filter_is_a_unique_prefix(api, engine, mixed):
    add(engine, 0x1F, name="c31")                           # 000…01f: "0" prefixes only this one
    assert names(api, "?all=1&" + filters(id=["2"])) == ["c2"]
    assert names(api, "?all=1&" + filters(id=["4" * 64, "5"])) == ["c5", "c4"]
    assert names(api, "?all=1&" + filters(id=["0"])) == ["c31"]
    add(engine, 0x2F, name="c47")
    assert names(api, "?all=1&" + filters(id=["0"])) == []    # ambiguous: moby matches none
    assert names(api, "?all=1&" + filters(id=["9"])) == []
    assert names(api, "?all=1&" + filters(id=["2"], name=["c1"])) == []      # filters combine with AND


def test_name_filter_is_an_unanchored_regexp_with_or_without_slash(api, engine, mixed):
    add(engine, 6, name="web-1")
    add(engine, 7, name="db_web")
    assert names(api, "?" + filters(name=["web"])) == ["db_web", "web-1"]
    assert names(api, "?" + filters(name=["^web"])) == ["web-1"]
    assert names(api, "?" + filters(name=["^/web"])) == ["web-1"]
    assert names(api, "?" + filters(name=["/db_web"])) == ["db_web"]
    assert names(api, "?" + filters(name=["c[4-9]$", "nope"])) == ["c4"]
    assert names(api, "?all=1&" + filters(name=["c[4-9]$"])) == ["c5", "c4"]
    assert names(api, "?" + filters(name=["(unclosed"])) == []                   # an invalid regexp: no match


def test_label_filter_every_key_or_pair_must_hold(api, mixed):
    assert names(api, "?all=1&" + filters(label=["tier"])) == ["c2", "c1"]
    assert names(api, "?all=1&" + filters(label=["tier=web"])) == ["c1"]
    assert names(api, "?all=1&" + filters(label=["tier", "team=a"])) == ["c1"]
    assert names(api, "?all=1&" + filters(label=["tier=web", "team=b"])) == []
    assert names(api, '?all=1&filters={"label":{"tier=db":true}}') == ["c2"]     # the docker CLI's encoding


def test_status_filter_implies_all_and_is_validated(api, mixed):
    assert names(api, "?" + filters(status=["exited"])) == ["c5", "c2"]
    assert names(api, "?" + filters(status=["created", "paused"])) == ["c4", "c3"]
    assert error(api, "?" + filters(status=["sleeping"]), 400) == (
        "invalid filter 'status=sleeping': invalid value for state (sleeping): must be one of created, running, "
        "paused, restarting, removing, exited, dead")


def test_exited_filter_needs_all_like_moby(api, mixed):
    assert names(api, "?" + filters(exited=["0"])) == []          # moby: stopped ones are not listed without -a
    assert names(api, "?all=1&" + filters(exited=["3"])) == ["c2"]
    assert names(api, "?all=1&" + filters(exited=["0", "3"])) == ["c5", "c2"]
    assert names(api, "?all=1&" + filters(exited=["1"])) == []
    assert error(api, "?all=1&" + filters(exited=["x"]), 400) == (
        "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax")


def test_ancestor_filter_by_name_tag_id_prefix_and_child_images(api, engine, image):
    add(engine, 1, image="busybox", image_id=image)
    add(engine, 2, image=image, image_id=image)
    add(engine, 3, image="other", image_id="sha256:" + "e" * 64)
    child = "sha256:" + "c" * 64            # an image built on busybox (its parent)
    engine.store.append([NewEvent("image", "commit", child, {}, payload={"parent": image, "size": 10})])
    add(engine, 4, image=child, image_id=child)
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", image, image[7:19], image[7:]):
        assert names(api, "?" + filters(ancestor=[ref])) == ["c4", "c2", "c1"], ref
    assert names(api, "?" + filters(ancestor=[child[7:19]])) == ["c4"]
    # an ancestor that does not exist names nothing: an empty list, not an error (moby only logs it)
    assert names(api, "?" + filters(ancestor=["nosuch:1"])) == []
    assert names(api, "?" + filters(ancestor=["nosuch", child])) == ["c4"]


def test_before_and_since_by_name_or_full_id(api, mixed):
    assert names(api, "?all=1&" + filters(before=["c3"])) == ["c2", "c1"]
    assert names(api, "?" + filters(before=["c5"])) == ["c4", "c1"]          # only running without all
    assert names(api, "?all=1&" + filters(since=["/c3"])) == ["c5", "c4"]
    assert names(api, "?all=1&" + filters(since=["1" * 64], before=["5" * 64])) == ["c4", "c3", "c2"]
    assert names(api, "?all=1&" + filters(since=["c5"])) == []
    assert error(api, "?all=1&" + filters(before=["nosuch"]), 404) == "No such container: nosuch"
    assert error(api, "?" + filters(since=["3333"]), 404) == "No such container: 3333"   # moby: no prefixes


def test_size_counts_the_upper_dir_and_adds_the_image(api, engine, image):
    image_size = api.get(f"/images/{image}/json").get_json()["Size"]
    assert image_size > 0
    cid = add(engine, 1, image="busybox", image_id=image)
    upper = os.path.join(engine.containers.bundle(cid), "upper")
    os.makedirs(os.path.join(upper, "etc", "deep"))
    with open(os.path.join(upper, "etc", "deep", "file"), "wb") as fh:
        fh.write(b"x" * 1000)
    os.link(os.path.join(upper, "etc", "deep", "file"), os.path.join(upper, "hardlink"))   # one inode: once
    os.symlink("etc/deep/file", os.path.join(upper, "link"))                                # 13 bytes
    open(os.path.join(upper, "empty"), "w").close()
    add(engine, 2, "created", image="busybox", image_id=image)                 # nothing written yet
    add(engine, 3, "created", image="gone", image_id="")                       # no image: no SizeRootFs
    rows = {c["Names"][0]: c for c in api.get("/containers/json?all=1&size=1").get_json()}
    assert rows["/c1"]["SizeRw"] == 1013 and rows["/c1"]["SizeRootFs"] == 1013 + image_size
    assert list(rows["/c1"])[6:9] == ["Ports", "SizeRw", "SizeRootFs"]
    assert "SizeRw" not in rows["/c2"] and rows["/c2"]["SizeRootFs"] == image_size   # omitempty, as moby
    assert "SizeRw" not in rows["/c3"] and "SizeRootFs" not in rows["/c3"]
    assert "SizeRw" not in api.get("/containers/json?all=1").get_json()[0]


def test_image_shows_the_id_when_the_reference_moved(api, engine, image):
    add(engine, 1, image="busybox", image_id=image)
    add(engine, 2, image="retagged:1", image_id=image)
    assert [c["Image"] for c in api.get("/containers/json").get_json()] == [image, "busybox"]   # no such ref
    assert api.post(f"/images/{image}/tag?repo=retagged&tag=1").status_code == 201
    assert [c["Image"] for c in api.get("/containers/json").get_json()] == ["retagged:1", "busybox"]
    assert api.delete("/images/busybox:latest").status_code == 200       # untag only: the image stays
    assert [c["Image"] for c in api.get("/containers/json").get_json()] == ["retagged:1", image]


def test_filters_for_features_berth_does_not_have_yet(api, mixed):
    assert names(api, "?" + filters(health=["none"])) == ["c4", "c1"]
    assert names(api, "?" + filters(health=["healthy"])) == []
    assert names(api, "?" + filters(is_task=["false"])) == ["c4", "c1"]
    assert names(api, "?" + filters(is_task=["true"])) == []
    assert names(api, "?" + filters(isolation=["default"])) == ["c4", "c1"]    # a no-op on Linux, as in moby
    for key in ("volume", "network", "publish", "expose"):
        assert names(api, "?all=1&" + filters(**{key: ["80"]})) == [], key
    assert error(api, "?" + filters(health=["sick"]), 400) == (
        "invalid filter 'health=sick': invalid value for health (sick): must be one of none, starting, healthy, "
        "unhealthy")
    assert error(api, "?" + filters(is_task=["maybe"]), 400) == "invalid filter 'is-task=[maybe]'"
    assert error(api, "?" + filters(publish=["80:80"]), 400) == "filter for 'publish' should not contain ':': 80:80"
    assert error(api, '?filters={"nope":["x"]}', 400) == "invalid filter 'nope'"


def test_many_containers_in_one_listing(api, engine):
    for n in range(16, 216):
        add(engine, n, "exited" if n % 2 else "running", labels={"n": str(n)} if n % 10 == 0 else None)
    everything = api.get("/containers/json?all=1").get_json()
    assert len(everything) == 200 and everything[0]["Names"] == ["/c215"] and everything[-1]["Names"] == ["/c16"]
    assert len(api.get("/containers/json").get_json()) == 100
    assert [c["Names"][0] for c in api.get("/containers/json?all=1&" + filters(label=["n"]) + "&limit=2")
            .get_json()] == ["/c210", "/c200"]


def test_every_event_shows_in_the_next_listing_and_status_ages(api, engine, monkeypatch):
    from app.api import container_list as containers_api
    cid = add(engine, 1, "running")
    assert names(api) == ["c1"]                       # the summaries are now rendered and cached
    engine.store.append([NewEvent("container", "rename", cid, {"name": "renamed", "oldName": "c1"})])
    assert names(api) == ["renamed"]
    engine.store.append([NewEvent("container", "die", cid, {"name": "renamed", "exitCode": "137"})])
    assert names(api) == [] and names(api, "?all=1") == ["renamed"]
    real = time.time_ns()
    monkeypatch.setattr(containers_api.time, "time_ns", lambda: real + 3 * 3600 * 10**9)
    assert api.get("/containers/json?all=1").get_json()[0]["Status"] == "Exited (137) 3 hours ago"
