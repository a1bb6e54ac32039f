"""stats, update and system df against a real daemon and real runc: docker-py, the docker CLI and our
CLI; the cgroup values checked in the cgroup files."""
from __future__ import annotations

import json
import os

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli, until


def _cgroup(daemon, cid: str, controller: str, name: str) -> str:
    path = os.path.join("/sys/fs/cgroup", controller, daemon.cgroup_parent, cid, name)
    with open(path) as fh:
        return fh.read().strip()


STATS_KEYS = ["read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
              "precpu_stats", "memory_stats", "name", "id"]


def test_docker_py_stats_no_stream_reads_the_cgroup(docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sh", "-c", "while :; do :; done"], detach=True,
                                     mem_limit="64m")
    try:
        s = docker_client.api.stats(c.id, stream=False)
        assert list(s)[:len(STATS_KEYS)] == STATS_KEYS
        assert s["id"] == c.id and s["name"] == "/" + c.name
        cpu, pre = s["cpu_stats"], s["precpu_stats"]
        assert cpu["online_cpus"] == os.cpu_count() and len(cpu["cpu_usage"]["percpu_usage"]) >= 1
        assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
        assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0
        busy = (cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]) / \
            (cpu["system_cpu_usage"] - pre["system_cpu_usage"]) * cpu["online_cpus"] * 100
        assert busy > 5                                   # a busy loop shows (its share is load-dependent)
        assert s["memory_stats"]["limit"] == 64 << 20 and s["memory_stats"]["usage"] > 0
        assert "total_inactive_file" in s["memory_stats"]["stats"]
        assert s["pids_stats"]["current"] >= 1
        one = docker_client.api.stats(c.id, stream=False, one_shot=True)
        assert one["preread"] == "0001-01-01T00:00:00Z"
    finally:
        c.remove(force=True)


def test_docker_py_stats_stream_gives_samples_and_ends_when_the_container_stops(docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        stream = docker_client.api.stats(c.id, stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["preread"] == first["read"]
        assert second["precpu_stats"]["cpu_usage"] == first["cpu_stats"]["cpu_usage"]
        c.kill()
        rest = list(stream)                       # ends once the container has stopped
        assert len(rest) <= 2
        zero = docker_client.api.stats(c.id, stream=False)
        assert zero["read"] == "0001-01-01T00:00:00Z" and zero["memory_stats"] == {}
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.stats(c.id, stream=False)


def test_docker_py_update_container_changes_the_live_cgroup_and_survives_a_restart(daemon, docker_client, busybox):
    c = docker_client.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="64m")
    try:
        assert docker_client.api.update_container(c.id, mem_limit="32m", cpu_shares=512, cpuset_cpus="0") == \
            {"Warnings": []}
        assert _cgroup(daemon, c.id, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cgroup(daemon, c.id, "cpu", "cpu.shares") == "512"
        assert _cgroup(daemon, c.id, "cpuset", "cpuset.cpus") == "0"
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 32 << 20 and c.attrs["HostConfig"]["CpuShares"] == 512
        c.restart(timeout=0)
        assert _cgroup(daemon, c.id, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cgroup(daemon, c.id, "cpu", "cpu.shares") == "512"
        kinds = [e["Action"] for e in docker_client.events(since=0, until=int(__import__("time").time()) + 1,
                                                            decode=True, filters={"container": c.id})]
        assert "update" in kinds
    finally:
        c.remove(force=True)


def test_update_the_kernel_refuses_is_an_error_and_nothing_is_recorded(daemon, docker_client, busybox):
    # a memory limit below what the container holds in tmpfs (no swap to push it to): the kernel refuses
    c = docker_client.containers.run("busybox", ["sh", "-c", "dd if=/dev/zero of=/dev/shm/x bs=1M count=20; "
                                                             "echo ready; sleep 60"],
                                     detach=True, mem_limit="64m", memswap_limit="64m")
    try:
        assert until(lambda: b"ready" in c.logs(), timeout=20)
        with pytest.raises(docker.errors.APIError) as err:
            docker_client.api.update_container(c.id, mem_limit="6m", memswap_limit="6m")
        assert err.value.status_code == 500
        assert f"Cannot update container {c.id}: unable to set memory limit to 6291456" in str(err.value)
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 64 << 20
        assert _cgroup(daemon, c.id, "memory", "memory.limit_in_bytes") == str(64 << 20)
    finally:
        c.remove(force=True)


def test_docker_py_df(docker_client, busybox):
    c = docker_client.containers.create("busybox", ["true"])
    try:
        df = docker_client.df()
        assert {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"} <= set(df)
        assert df["LayersSize"] > 0
        (img,) = [i for i in df["Images"] if i["Id"] == busybox]
        assert img["Containers"] == 1
        assert [x["Id"] for x in df["Containers"]] == [c.id]
    finally:
        c.remove(force=True)
