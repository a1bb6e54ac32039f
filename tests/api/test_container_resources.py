"""stats, update and system df through the Flask test client, on the fake runtime (tests/fakes.py):
Docker's shapes, status codes and messages, the `update` event and what a restart applies. The cgroup
counters come from a stub adapter handed to the Engine (the real readers are tests/unit/test_cgroup_stats.py)."""
from __future__ import annotations

import json
import os

import pytest

from app.runtime.host.cgroups import Cgroups
from tests.api.test_containers_api import V, _image_tar, actions, create, error, eventually, inspect, run  # noqa: F401
from tests.fakes import FakeHost


class StubCgroups(Cgroups):
    """Counters that grow by 10 ms of CPU per read, 4 MiB of memory of which 1 MiB inactive file."""

    def __init__(self, parent: str):
        super().__init__(parent)
        self.reads = 0

    def stats(self, cid: str):
        self.reads += 1
        return {"cpu_usage": {"total_usage": 10_000_000 * self.reads, "percpu_usage": [5_000_000 * self.reads] * 2,
                              "usage_in_kernelmode": 0, "usage_in_usermode": 10_000_000 * self.reads},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
                "memory": {"usage": 4 << 20, "max_usage": 5 << 20, "stats": {"total_inactive_file": 1 << 20,
                                                                            "cache": 1 << 20},
                           "failcnt": 0, "limit": (1 << 63) - 4096},
                "pids": {"current": 1, "limit": 0},
                "blkio": {"io_service_bytes_recursive": [{"major": 8, "minor": 0, "op": "Read", "value": 4096}],
                          "io_serviced_recursive": None, "io_queue_recursive": None,
                          "io_service_time_recursive": None, "io_wait_time_recursive": None,
                          "io_merged_recursive": None, "io_time_recursive": None, "sectors_recursive": None}}

    def system_cpu(self):
        return 1_000_000_000 * 100 * self.reads, 2

    def available(self, kind: str) -> str:
        return "0-1" if kind == "cpus" else "0"


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def fake_engine(tmp_path, host):
    from app.config import Config
    from app.engine import Engine
    root = str(tmp_path / "root")
    config = Config(data_root=root, cgroup_parent="berth-fake")
    parts = host.host(root, config.cgroup_parent)
    parts.cgroups = StubCgroups(config.cgroup_parent)
    eng = Engine(config, host=parts).start()
    yield eng
    eng.close()


@pytest.fixture
def fake_api(fake_engine):
    from app import create_app
    return create_app(fake_engine.config, fake_engine).test_client()


@pytest.fixture
def image(fake_api):
    r = fake_api.post(f"{V}/images/create?fromSrc=-&repo=busybox:latest&changes="
                      + "CMD%20%5B%22sleep%22%2C%20%22300%22%5D", data=_image_tar())
    assert r.status_code == 200, r.data
    return json.loads(r.data.decode().strip().splitlines()[-1])["status"]


STATS_KEYS = ["read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
              "precpu_stats", "memory_stats", "name", "id"]


# ------------------------------------------------------------------------------------------ stats

def test_stats_no_stream_has_dockers_shape_and_precpu_from_a_second_read(fake_api, image):
    cid = run(fake_api, "s1")
    r = fake_api.get(f"{V}/containers/s1/stats?stream=0")
    assert r.status_code == 200 and r.mimetype == "application/json"
    s = json.loads(r.data)
    assert list(s) == STATS_KEYS
    assert s["name"] == "/s1" and s["id"] == cid and s["num_procs"] == 0 and s["storage_stats"] == {}
    assert s["cpu_stats"]["online_cpus"] == 2 and s["cpu_stats"]["system_cpu_usage"] > 0
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > s["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["preread"] != "0001-01-01T00:00:00Z" and s["preread"] < s["read"]
    assert s["memory_stats"]["usage"] == 4 << 20 and s["memory_stats"]["stats"]["total_inactive_file"] == 1 << 20
    assert 0 < s["memory_stats"]["limit"] < (1 << 63) - 4096          # capped at the machine's memory
    assert "failcnt" not in s["memory_stats"]                          # omitempty, as Go
    assert s["pids_stats"] == {"current": 1}
    assert s["blkio_stats"]["io_service_bytes_recursive"][0]["op"] == "Read"
    assert "networks" not in s                                        # no interface but lo yet


def test_stats_one_shot_has_no_precpu(fake_api, image):
    run(fake_api, "s2")
    s = json.loads(fake_api.get(f"{V}/containers/s2/stats?stream=false&one-shot=true").data)
    assert s["preread"] == "0001-01-01T00:00:00Z"
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and "system_cpu_usage" not in s["precpu_stats"]


def test_stats_stream_gives_a_sample_a_second_and_ends_when_the_container_stops(fake_api, host, image):
    cid = run(fake_api, "s3")
    r = fake_api.get(f"{V}/containers/s3/stats", buffered=False)
    assert r.status_code == 200
    lines = (line for line in r.response if line.strip())
    first, second = json.loads(next(lines)), json.loads(next(lines))
    assert first["preread"] == "0001-01-01T00:00:00Z"
    assert second["preread"] == first["read"] and second["precpu_stats"] == first["cpu_stats"]
    host.exit(cid, 0)
    rest = list(lines)                   # the stream ends once the container has stopped
    assert len(rest) <= 2
    r.close()


def test_stats_of_a_stopped_container_is_moby_zeroed_sample(fake_api, image):
    cid = create(fake_api, "s4")
    s = json.loads(fake_api.get(f"{V}/containers/s4/stats?stream=0").data)
    assert s == {"read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z", "pids_stats": {},
                 "blkio_stats": {k: None for k in ("io_service_bytes_recursive", "io_serviced_recursive",
                                                   "io_queue_recursive", "io_service_time_recursive",
                                                   "io_wait_time_recursive", "io_merged_recursive",
                                                   "io_time_recursive", "sectors_recursive")},
                 "num_procs": 0, "storage_stats": {},
                 "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                               "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
                 "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                                  "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
                 "memory_stats": {}, "name": "/s4", "id": cid}


def test_stats_bad_input(fake_api, image):
    r = fake_api.get(f"{V}/containers/nothere/stats?stream=0")
    assert r.status_code == 404 and error(r) == "No such container: nothere"
    create(fake_api, "s5")
    r = fake_api.get(f"{V}/containers/s5/stats?stream=1&one-shot=1")
    assert r.status_code == 400 and error(r) == "cannot have stream=true and one-shot=true"
    r = fake_api.get(f"{V}/containers/s5/stats?stream=maybe")
    assert r.status_code == 400


# ------------------------------------------------------------------------------------------ update

def test_update_a_running_container_goes_through_runc_and_is_recorded(fake_api, fake_engine, host, image):
    cid = run(fake_api, "u1", HostConfig={"Memory": 64 << 20})
    r = fake_api.post(f"{V}/containers/u1/update", json={"Memory": 32 << 20, "CpuShares": 512, "PidsLimit": 50,
                                                          "CpusetCpus": "0", "RestartPolicy": {"Name": "no"}})
    assert r.status_code == 200, r.data
    assert r.get_json() == {"Warnings": []}
    (updated, resources), = host.updates
    assert updated == cid
    assert resources == {"memory": {"limit": 32 << 20, "swap": 128 << 20}, "cpu": {"shares": 512, "cpus": "0"},
                         "pids": {"limit": 50}}
    hc = inspect(fake_api, "u1")["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"], hc["PidsLimit"], hc["CpusetCpus"]) == \
        (32 << 20, 128 << 20, 512, 50, "0")
    assert actions(fake_engine, cid)[-1] == "update"
    ev = [e for e in fake_engine.store.read(limit=1000) if e.action == "update"][-1]
    assert ev.attributes["name"] == "u1" and ev.attributes["image"] == "busybox"
    # a restart applies the recorded values
    host.exit(cid, 0)
    assert eventually(lambda: inspect(fake_api, "u1")["State"]["Status"] == "exited")
    assert fake_api.post(f"{V}/containers/u1/start").status_code == 204
    with open(os.path.join(fake_engine.containers.bundle(cid), "config.json")) as fh:
        spec = json.load(fh)["linux"]["resources"]
    assert spec["memory"]["limit"] == 32 << 20 and spec["cpu"]["shares"] == 512 and spec["pids"]["limit"] == 50
    assert spec["cpu"]["cpus"] == "0"


def test_update_a_stopped_container_records_without_runc(fake_api, host, image):
    create(fake_api, "u2")
    r = fake_api.post(f"{V}/containers/u2/update", json={"CpuShares": 256})
    assert r.status_code == 200 and host.updates == []
    assert inspect(fake_api, "u2")["HostConfig"]["CpuShares"] == 256


def test_update_refused_by_the_kernel_is_dockers_error_and_nothing_is_recorded(fake_api, fake_engine, host, image):
    cid = run(fake_api, "u3")
    before = actions(fake_engine, cid)
    host.update_error = "unable to set memory limit to 6291456 (current usage: 9437184, peak usage: 9437184)"
    r = fake_api.post(f"{V}/containers/u3/update", json={"Memory": 6 << 20})
    assert r.status_code == 500
    assert error(r) == f"Cannot update container {cid}: {host.update_error}"
    assert actions(fake_engine, cid) == before
    assert inspect(fake_api, "u3")["HostConfig"].get("Memory", 0) == 0


@pytest.mark.parametrize("body, status, message", [
    ({"Memory": 1000}, 400, "Minimum memory limit allowed is 6MB"),
    ({"MemoryReservation": 1000}, 400, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, 400,
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"CpuShares": 1}, 400, "the minimum allowed cpu-shares is 2"),
    ({"CpuPeriod": 10}, 400, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"NanoCpus": 5_000_000_000_000}, 400, "Range of CPUs is from 0.01 to"),
    ({"CpusetCpus": "0-x"}, 400, "Invalid value 0-x for cpuset cpus"),
    ({"CpusetCpus": "7"}, 400, "Requested CPUs are not available - requested 7, available: 0-1"),
    ({"CpusetMems": "3"}, 400, "Requested memory nodes are not available - requested 3, available: 0"),
    ({"BlkioWeight": 300}, 400, "berth does not support HostConfig.BlkioWeight yet"),
    ({"CpuRealtimeRuntime": 10}, 400, "berth does not support HostConfig.CpuRealtimeRuntime yet"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]}, 400,
     "berth does not support updating HostConfig.Ulimits: it is set at create"),
    ({"OomKillDisable": True}, 400, "berth does not support updating HostConfig.OomKillDisable: it is set at create"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, 400,
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"RestartPolicy": {"Name": "sometimes"}}, 400, "invalid restart policy: unknown policy 'sometimes'"),
    ({"Memory": "64m"}, 400, "invalid JSON: json: cannot unmarshal string into Go struct field UpdateConfig.Memory "
                             "of type int64"),
    ({"BlkioWeight": -1}, 400, "into Go struct field UpdateConfig.BlkioWeight of type uint16"),
])
def test_update_bad_values_are_refused_and_change_nothing(fake_api, fake_engine, host, image, body, status, message):
    cid = run(fake_api, "u4")
    before = actions(fake_engine, cid)
    r = fake_api.post(f"{V}/containers/u4/update", json=body)
    assert r.status_code == status and message in error(r), r.data
    assert host.updates == [] and actions(fake_engine, cid) == before


def test_update_conflicts_as_moby(fake_api, image):
    cid = run(fake_api, "u5", HostConfig={"NanoCpus": 500_000_000, "Memory": 32 << 20})
    r = fake_api.post(f"{V}/containers/u5/update", json={"CpuQuota": 50000})
    assert r.status_code == 409
    assert error(r) == (f"Cannot update container {cid}: Conflicting options: CPU Quota cannot be updated as "
                        "NanoCPUs has already been set")
    r = fake_api.post(f"{V}/containers/u5/update", json={"Memory": 128 << 20})
    assert r.status_code == 409 and "Memory limit should be smaller than already set memoryswap limit" in error(r)
    assert fake_api.post(f"{V}/containers/u5/update",
                         json={"Memory": 128 << 20, "MemorySwap": 256 << 20}).status_code == 200
    r = fake_api.post(f"{V}/containers/nothere/update", json={"CpuShares": 512})
    assert r.status_code == 404


def test_update_lifting_the_pids_limit_tells_runc_unlimited(fake_api, host, image):
    run(fake_api, "u6", HostConfig={"PidsLimit": 20})
    assert fake_api.post(f"{V}/containers/u6/update", json={"PidsLimit": -1}).status_code == 200
    assert host.updates[-1][1]["pids"] == {"limit": -1}
    assert inspect(fake_api, "u6")["HostConfig"]["PidsLimit"] == 0


def test_update_event_survives_a_projection_rebuild(fake_api, fake_engine, image):
    from app.projections import rebuild, snapshot
    run(fake_api, "u7")
    assert fake_api.post(f"{V}/containers/u7/update", json={"CpuShares": 700}).status_code == 200
    before = snapshot(fake_engine.store._writer, fake_engine.store.projectors)
    rebuild(fake_engine.store)
    assert snapshot(fake_engine.store._writer, fake_engine.store.projectors) == before
    assert inspect(fake_api, "u7")["HostConfig"]["CpuShares"] == 700


# ------------------------------------------------------------------------------------------ system df

def test_system_df_counts_images_layers_and_containers(fake_api, image):
    cid = run(fake_api, "d1")
    create(fake_api, "d2")
    r = fake_api.get(f"{V}/system/df")
    assert r.status_code == 200
    df = r.get_json()
    assert set(df) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    assert df["LayersSize"] > 0 and df["Volumes"] == [] and df["BuildCache"] == []
    (img,) = df["Images"]
    assert img["Id"] == image and img["Containers"] == 2 and img["SharedSize"] == 0
    assert img["Size"] == df["LayersSize"] and img["RepoTags"] == ["busybox:latest"]
    by_name = {c["Names"][0]: c for c in df["Containers"]}
    assert by_name["/d1"]["Id"] == cid and by_name["/d1"]["State"] == "running"
    assert by_name["/d2"]["State"] == "created"


def test_system_df_type_narrows_and_bad_type_is_400(fake_api, image):
    df = fake_api.get(f"{V}/system/df?type=image").get_json()
    assert df["Images"] and df["Containers"] is None and df["Volumes"] is None
    r = fake_api.get(f"{V}/system/df?type=bogus")
    assert r.status_code == 400 and error(r) == "unknown object type: bogus"
    df = fake_api.get("/v1.41/system/df?type=bogus").get_json()          # before 1.42: type is ignored
    assert df["Images"] is not None
