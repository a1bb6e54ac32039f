"""Volumes through the Flask test client on the fake runtime: the volume endpoints, mount points of
a create, Docker's messages for bad input (nothing created, no event), the deletion rules with the
in-use guard, and the orphans projection against a recomputation from the log after random
create/run/rm/prune sequences."""
from __future__ import annotations

import json
import os
import random

import pytest

from app.projections import rebuild, snapshot
from tests.api.test_containers_api import V, create, fake_api, fake_engine, host, image, inspect, run, wait  # noqa: F401


def vol_events(engine) -> list[tuple[str, str]]:
    return [(e.action, e.actor_id) for e in engine.store.read(limit=100_000) if e.type == "volume"]


def names(api) -> list[str]:
    r = api.get(f"{V}/volumes")
    assert r.status_code == 200
    return sorted(v["Name"] for v in r.get_json()["Volumes"])


# ------------------------------------------------------------------------------------------ volume command

def test_create_inspect_list_remove(fake_api, fake_engine):
    r = fake_api.post(f"{V}/volumes/create", json={"Name": "v1", "Labels": {"a": "1"}})
    assert r.status_code == 201
    v = r.get_json()
    assert v["Name"] == "v1" and v["Driver"] == "local" and v["Scope"] == "local" and v["Labels"] == {"a": "1"}
    assert v["Mountpoint"] == os.path.join(fake_engine.data_root, "volumes", "v1", "_data")
    assert os.path.isdir(v["Mountpoint"]) and v["Options"] is None
    assert fake_api.post(f"{V}/volumes/create", json={"Name": "v1"}).get_json()["CreatedAt"] == v["CreatedAt"]
    anon = fake_api.post(f"{V}/volumes/create", json={}).get_json()["Name"]
    assert len(anon) == 64
    assert names(fake_api) == sorted(["v1", anon])
    got = fake_api.get(f"{V}/volumes/v1?size=1").get_json()
    assert got["UsageData"] == {"Size": 0, "RefCount": 0}
    f = fake_api.get(f"{V}/volumes?filters=" + json.dumps({"label": ["a=1"]})).get_json()["Volumes"]
    assert [x["Name"] for x in f] == ["v1"]
    f = fake_api.get(f"{V}/volumes?filters=" + json.dumps({"name": ["v"]})).get_json()["Volumes"]
    assert [x["Name"] for x in f] == ["v1"]
    assert fake_api.delete(f"{V}/volumes/v1").status_code == 204
    assert not os.path.exists(v["Mountpoint"])
    r = fake_api.get(f"{V}/volumes/v1")
    assert r.status_code == 404 and r.get_json()["message"] == "get v1: no such volume"
    assert fake_api.delete(f"{V}/volumes/v1").status_code == 404
    assert fake_api.delete(f"{V}/volumes/v1?force=1").status_code == 204


@pytest.mark.parametrize("body, status, message", [
    ({"Name": "a"}, 400, "volume name is too short, names should be at least two alphanumeric characters"),
    ({"Name": "bad/name"}, 400, '"bad/name" includes invalid characters for a local volume name'),
    ({"Name": "x1", "Driver": "nfsplug"}, 404, 'error looking up volume plugin nfsplug: plugin "nfsplug" not found'),
    ({"Name": "x1", "DriverOpts": {"foo": "1"}}, 400, 'invalid option: "foo"'),
    ({"Name": "x1", "DriverOpts": {"type": "tmpfs"}}, 400, 'missing required option: "device"'),
    ({"Name": "x1", "DriverOpts": {"type": "tmpfs", "device": "refuse"}}, 400, "failed to mount local volume"),
    ({"Name": 5}, 400, "cannot unmarshal number into Go struct field CreateOptions.Name of type string"),
    ({"Name": "cv", "ClusterVolumeSpec": {"Group": "g", "AccessMode": {"Scope": "single"}}}, 503,
     'ClusterVolumeSpec: cluster volumes need swarm mode: This node is not a swarm manager. Use "docker swarm init"'),
    ({"Name": "cv", "clustervolumespec": {}}, 503, "ClusterVolumeSpec: cluster volumes need swarm mode"),
    ({"Name": "cv", "ClusterVolumeSpec": "x"}, 400,
     "cannot unmarshal string into Go struct field CreateOptions.ClusterVolumeSpec of type volume.ClusterVolumeSpec"),
])
def test_create_bad_input_changes_nothing(fake_api, fake_engine, body, status, message):
    r = fake_api.post(f"{V}/volumes/create", json=body)
    assert r.status_code == status, r.get_json()
    assert message in r.get_json()["message"]
    assert names(fake_api) == [] and vol_events(fake_engine) == []
    assert [n for n in os.listdir(os.path.join(fake_engine.data_root, "volumes"))] == []


def test_local_driver_tmpfs_mounted_while_used(fake_api, fake_engine, host, image):
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=8m"}
    v = fake_api.post(f"{V}/volumes/create", json={"Name": "tv", "DriverOpts": opts}).get_json()
    assert v["Options"] == opts
    mounts = fake_engine.host.volmounts
    assert not mounts.active
    cid = run(fake_api, HostConfig={"Binds": ["tv:/t"]})
    assert mounts.active == {v["Mountpoint"]}
    host.exit(cid, 0)
    wait(fake_api, cid)
    assert not mounts.active


# ------------------------------------------------------------------------------------------ containers

def test_mount_points_in_inspect_and_events(fake_api, fake_engine, image, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    cid = run(fake_api, Volumes={"/data": {}}, HostConfig={
        "Binds": ["named:/n:ro", f"{src}:/b"],
        "Tmpfs": {"/run": "size=1m"},
        "Mounts": [{"Type": "tmpfs", "Target": "/tt", "TmpfsOptions": {"SizeBytes": 1 << 20}}]})
    mounts = {m["Destination"]: m for m in inspect(fake_api, cid)["Mounts"]}
    assert set(mounts) == {"/data", "/n", "/b", "/tt"}          # --tmpfs is not listed, as moby
    anon = mounts["/data"]["Name"]
    assert len(anon) == 64 and mounts["/data"] == {
        "Type": "volume", "Name": anon, "Source": os.path.join(fake_engine.data_root, "volumes", anon, "_data"),
        "Destination": "/data", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}
    assert mounts["/n"]["Mode"] == "ro" and mounts["/n"]["RW"] is False
    assert mounts["/b"] == {"Type": "bind", "Source": str(src), "Destination": "/b", "Mode": "", "RW": True,
                            "Propagation": "rprivate"}
    spec = json.load(open(os.path.join(fake_engine.containers.bundle(cid), "config.json")))
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert by_dest["/data"]["options"] == ["rbind", "rprivate"]
    assert by_dest["/n"]["options"] == ["rbind", "rprivate", "ro"]
    assert by_dest["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "noexec", "size=1m"]}
    assert by_dest["/tt"]["options"] == ["nosuid", "nodev", "noexec", "size=1m"]
    evs = [e for e in fake_engine.store.read(limit=1000) if e.type == "volume"]
    assert [(e.action, e.actor_id) for e in evs] == [("create", anon), ("create", "named"), ("mount", anon),
                                                     ("mount", "named")]
    assert evs[3].attributes == {"container": cid, "destination": "/n", "driver": "local", "propagation": "",
                                 "read/write": "false"}
    ps = fake_api.get(f"{V}/containers/json?filters=" + json.dumps({"volume": ["named"]})).get_json()
    assert [c["Id"] for c in ps] == [cid] and len(ps[0]["Mounts"]) == 4
    assert fake_api.get(f"{V}/containers/json?filters=" + json.dumps({"volume": ["/b"]})).get_json()[0]["Id"] == cid
    assert fake_api.get(f"{V}/containers/json?filters=" + json.dumps({"volume": ["nope"]})).get_json() == []


@pytest.mark.parametrize("body, message", [
    ({"HostConfig": {"Binds": ["rel/path:/x"]}}, '"rel/path" includes invalid characters for a local volume name'),
    ({"HostConfig": {"Binds": ["/tmp:/"]}}, "invalid volume specification: '/tmp:/'"),
    ({"HostConfig": {"Binds": ["/tmp:rel"]}}, "invalid volume specification: '/tmp:rel'"),
    ({"HostConfig": {"Binds": ["/tmp:/x:bogus"]}}, "invalid mode: bogus"),
    ({"HostConfig": {"Binds": ["/tmp:/x:ro:rw"]}}, "invalid volume specification: '/tmp:/x:ro:rw'"),
    ({"HostConfig": {"Binds": [":/x"]}}, "invalid volume specification: ':/x'"),
    ({"HostConfig": {"Binds": ["/tmp:/x:ro,rw"]}}, "invalid mode: ro,rw"),
    ({"HostConfig": {"Binds": ["/tmp:/x", "v2:/x"]}}, "Duplicate mount point: /x"),
    ({"HostConfig": {"Binds": ["/tmp:/x"], "Tmpfs": {"/x": ""}}}, "Duplicate mount point: /x"),
    ({"HostConfig": {"Tmpfs": {"/x": "size=1m,bogus"}}}, "invalid tmpfs option 'bogus'"),
    ({"HostConfig": {"VolumesFrom": ["missing"]}}, "No such container: missing"),
    ({"HostConfig": {"VolumesFrom": ["x:rshared"]}}, "invalid mode: rshared"),
    ({"Volumes": {"/v": {}}, "HostConfig": {"VolumeDriver": "flocker"}}, 'error looking up volume plugin flocker'),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/nonexistent-berth", "Target": "/x"}]}},
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-berth'),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "rel", "Target": "/x"}]}},
     "invalid mount path: 'rel' mount path must be absolute"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/"}]}}, "destination can't be '/'"),
    ({"HostConfig": {"Mounts": [{"Type": "bogus", "Target": "/x"}]}}, "mount type unknown"),
    ({"HostConfig": {"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/x"}]}},
     "field Source must not be specified"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/x", "BindOptions": {"Propagation": "shared"}}]}},
     "field BindOptions must not be specified"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x",
                                 "BindOptions": {"Propagation": "weird"}}]}}, "invalid propagation mode: weird"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "v3", "Target": "/x",
                                 "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs", "device": "refuse"}}}}]}},
     "failed to mount local volume"),
    ({"Volumes": {"relative": {}}}, "invalid mount path: 'relative' mount path must be absolute"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/x", "ImageOptions": {"Subpath": "a"}}]}},
     'invalid mount config for type "volume": field ImageOptions must not be specified'),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "ClusterOptions": {}}]}},
     'invalid mount config for type "bind": field ClusterOptions must not be specified'),
])
def test_bad_mounts_create_nothing(fake_api, fake_engine, image, body, message):
    r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", **body})
    assert r.status_code in (400, 404), r.get_json()
    assert message in r.get_json()["message"]
    assert fake_api.get(f"{V}/containers/json?all=1").get_json() == []
    assert names(fake_api) == [] and vol_events(fake_engine) == []


def test_deletion_rules(fake_api, fake_engine, host, image):
    a = create(fake_api, "ca", Volumes={"/data": {}}, HostConfig={"Binds": ["keep:/k"]})
    anon = {m["Destination"]: m["Name"] for m in inspect(fake_api, a)["Mounts"]}["/data"]
    b = create(fake_api, "cb", HostConfig={"VolumesFrom": ["ca:ro"]})
    assert {m["Destination"]: m["RW"] for m in inspect(fake_api, b)["Mounts"]} == {"/data": False, "/k": False}
    r = fake_api.delete(f"{V}/volumes/{anon}")
    assert r.status_code == 409
    assert r.get_json()["message"] == f"remove {anon}: volume is in use - [{', '.join(sorted([a, b]))}]"
    assert fake_api.post(f"{V}/volumes/prune?filters=" + json.dumps({"all": ["true"]})).get_json() == \
        {"VolumesDeleted": None, "SpaceReclaimed": 0}
    assert fake_api.delete(f"{V}/containers/ca?v=1").status_code == 204
    assert names(fake_api) == sorted([anon, "keep"])      # b still references it
    assert fake_api.delete(f"{V}/containers/cb?v=1").status_code == 204
    assert names(fake_api) == sorted([anon, "keep"])      # b's came from --volumes-from: not b's own
    c = create(fake_api, "cc", Volumes={"/data": {}}, HostConfig={"Binds": ["keep:/k"]})
    anon_c = {m["Destination"]: m["Name"] for m in inspect(fake_api, c)["Mounts"]}["/data"]
    assert fake_api.delete(f"{V}/containers/cc?v=1").status_code == 204
    assert anon_c not in names(fake_api) and "keep" in names(fake_api)
    d = run(fake_api, "cd", Cmd=["true"], Volumes={"/x": {}}, HostConfig={"AutoRemove": True})
    wait(fake_api, d, "removed")
    assert names(fake_api) == sorted([anon, "keep"])      # run --rm took its anonymous volume
    pruned = fake_api.post(f"{V}/volumes/prune").get_json()
    assert pruned == {"VolumesDeleted": [anon], "SpaceReclaimed": 0}
    pruned = fake_api.post(f"{V}/volumes/prune?filters=" + json.dumps({"all": ["1"]})).get_json()
    assert pruned["VolumesDeleted"] == ["keep"] and names(fake_api) == []
    assert ("prune", "") in vol_events(fake_engine)


def test_orphans_answer_from_the_log(fake_api, fake_engine, image):
    a = create(fake_api, "maker", Volumes={"/data": {}})
    anon = inspect(fake_api, a)["Mounts"][0]["Name"]
    assert fake_api.get(f"{V}/berth/volumes/orphans").get_json() == []
    fake_api.delete(f"{V}/containers/maker")
    (o,) = fake_api.get(f"{V}/berth/volumes/orphans").get_json()
    assert o["Name"] == anon and o["CreatedBy"] == {"Id": a, "Name": "maker", "Image": "busybox"}
    assert o["LastUsedBy"] == [{"Id": a, "Name": "maker"}] and o["Size"] == 0 and o["Anonymous"] is True
    dangling = fake_api.get(f"{V}/volumes?filters=" + json.dumps({"dangling": ["true"]})).get_json()["Volumes"]
    assert [v["Name"] for v in dangling] == [anon]
    create(fake_api, "user", HostConfig={"Binds": [f"{anon}:/again"]})
    assert fake_api.get(f"{V}/berth/volumes/orphans").get_json() == []


# ------------------------------------------------------------------------------------------ the projection

def _recompute_orphans(engine) -> dict[str, tuple]:
    """From the log alone: volume → (orphaned since, creator id, last users), as the projection says."""
    vols: dict[str, dict] = {}
    refs: dict[str, set] = {}
    points: dict[str, list] = {}
    for e in engine.store.iter_all():
        if e.type == "volume" and e.action == "create":
            vols[e.actor_id] = {"since": e.time_nano, "creator": ((e.payload or {}).get("creator") or {}).get("id", ""),
                                "last": []}
        elif e.type == "volume" and e.action == "destroy":
            vols.pop(e.actor_id, None)
        elif e.type == "container" and e.action == "create":
            points[e.actor_id] = [p["Name"] for p in (e.payload or {}).get("mounts") or [] if p["Type"] == "volume"]
            for n in points[e.actor_id]:
                refs.setdefault(n, set()).add(e.actor_id)
                if n in vols:
                    vols[n]["since"] = None
        elif e.type == "container" and e.action == "destroy":
            for n in dict.fromkeys(points.pop(e.actor_id, [])):
                refs[n].discard(e.actor_id)
                if n in vols:
                    last = [u for u in vols[n]["last"] if u[0] != e.actor_id] + [[e.actor_id, e.attributes["name"]]]
                    vols[n]["last"] = last[-5:]
                    if not refs[n]:
                        vols[n]["since"] = e.time_nano
    return {n: (v["since"], v["creator"], v["last"]) for n, v in vols.items() if v["since"] is not None}


@pytest.mark.parametrize("seed", range(6))
def test_projection_equals_recomputation_after_random_sequences(fake_api, fake_engine, host, image, seed):
    rnd = random.Random(seed)
    live: list[str] = []
    named = ["n1", "n2", "n3"]
    ops = ["create"] * 4 + ["run"] * 3 + ["rm", "rmv"] * 3 + ["prune", "prune_all", "volume", "rmvol", "rename"]
    for step in range(60):
        op = rnd.choice(ops)
        if op in ("create", "run"):
            body = {}
            if rnd.random() < 0.6:
                body["Volumes"] = {"/a": {}}
            binds = [f"{rnd.choice(named)}:/n{i}" for i in range(rnd.randint(0, 2))]
            if binds:
                body["HostConfig"] = {"Binds": binds}
            if live and rnd.random() < 0.3:
                body.setdefault("HostConfig", {})["VolumesFrom"] = [rnd.choice(live)]
            r = fake_api.post(f"{V}/containers/create", json={"Image": "busybox", **body})
            if r.status_code != 201:
                continue                    # duplicate mount point from --volumes-from, etc.
            cid = r.get_json()["Id"]
            live.append(cid)
            if op == "run":
                fake_api.post(f"{V}/containers/{cid}/start")
                if rnd.random() < 0.5:
                    host.exit(cid, 0)
                    wait(fake_api, cid)
        elif op in ("rm", "rmv") and live:
            cid = live.pop(rnd.randrange(len(live)))
            assert fake_api.delete(f"{V}/containers/{cid}?force=1" + ("&v=1" if op == "rmv" else "")).status_code == 204
        elif op == "prune":
            fake_api.post(f"{V}/volumes/prune")
        elif op == "prune_all":
            fake_api.post(f"{V}/volumes/prune?filters=" + json.dumps({"all": ["true"]}))
        elif op == "volume":
            fake_api.post(f"{V}/volumes/create", json={"Name": rnd.choice(named)})
        elif op == "rmvol":
            vols = names(fake_api)
            if vols:
                assert fake_api.delete(f"{V}/volumes/{rnd.choice(vols)}").status_code in (204, 409)
        elif op == "rename" and live:
            fake_api.post(f"{V}/containers/{rnd.choice(live)}/rename?name=r{step}")
    got = {o["Name"]: (o["OrphanedSinceNano"], (o["CreatedBy"] or {}).get("Id", ""),
                       [[u["Id"], u["Name"]] for u in reversed(o["LastUsedBy"])])
           for o in fake_api.get(f"{V}/berth/volumes/orphans?size=0").get_json()}
    assert got == _recompute_orphans(fake_engine)
    dangling = fake_api.get(f"{V}/volumes?filters=" + json.dumps({"dangling": ["1"]})).get_json()["Volumes"]
    assert sorted(v["Name"] for v in dangling) == sorted(got)
    store = fake_engine.store
    incremental = snapshot(store.reader(), store.projectors)
    rebuild(store)
    assert snapshot(store.reader(), store.projectors) == incremental
    on_disk = sorted(os.listdir(os.path.join(fake_engine.data_root, "volumes")))
    assert on_disk == names(fake_api)


def test_volume_driver_matters_only_for_volumes_made(fake_api, fake_engine, image):
    cid = create(fake_api, HostConfig={"VolumeDriver": "foo"})       # docker-py's test_create_with_volume_driver
    assert inspect(fake_api, cid)["HostConfig"]["VolumeDriver"] == "foo"
    anon = fake_api.post(f"{V}/volumes/create", json={}).get_json()
    assert anon["Labels"] == {"com.docker.volume.anonymous": ""}
    assert fake_api.post(f"{V}/volumes/prune").get_json()["VolumesDeleted"] == [anon["Name"]]


def test_cluster_volume_spec_null_or_before_1_42(fake_api, fake_engine):
    """null is Go's nil pointer: a local volume. Before API 1.42 the field did not exist (moby ignores it)."""
    assert fake_api.post(f"{V}/volumes/create", json={"Name": "cv1", "ClusterVolumeSpec": None}).status_code == 201
    r = fake_api.post("/v1.41/volumes/create", json={"Name": "cv2", "ClusterVolumeSpec": {"Group": "g"}})
    assert r.status_code == 201 and r.get_json()["Name"] == "cv2"
    assert names(fake_api) == ["cv1", "cv2"]


def test_relabel_options_are_accepted_with_a_warning(fake_api, fake_engine, image, tmp_path, caplog):
    """`:z` / `:Z` (SELinux relabel): moby relabels only with SELinux enabled and a mount label, which
    berth never sets; the create succeeds and says the option had no effect."""
    src = tmp_path / "src"
    src.mkdir()
    r = fake_api.post(f"{V}/containers/create", json={
        "Image": "busybox", "HostConfig": {"Binds": [f"{src}:/a:z", f"{src}:/b:ro,Z", "named:/c:z", f"{src}:/d"]}})
    assert r.status_code == 201, r.get_json()
    warnings = r.get_json()["Warnings"]
    assert len(warnings) == 3
    assert warnings[0].startswith(f'"{src}:/a:z": the "z" option (SELinux relabeling) has no effect: ')
    assert warnings[1].startswith(f'"{src}:/b:ro,Z": the "Z" option') and warnings[2].startswith('"named:/c:z"')
    assert any("SELinux relabeling" in rec.getMessage() for rec in caplog.records)      # and in the daemon log
    mounts = {m["Destination"]: m for m in inspect(fake_api, r.get_json()["Id"])["Mounts"]}
    assert mounts["/a"]["Mode"] == "z" and mounts["/b"]["Mode"] == "ro,Z" and not mounts["/b"]["RW"]
    assert fake_api.post(f"{V}/containers/create", json={"Image": "busybox"}).get_json()["Warnings"] == []
