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


# ------------------------------------------------------------------------------------------ our CLI

STATS_HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def _columns(line: str) -> list[str]:
    import re
    return re.split(r"\s{2,}", line.strip())


def test_cli_stats_no_stream_update_and_system_df(daemon, busybox):
    cid = daemon.cli("run", "-d", "--name", "st1", "-m", "64m", "busybox", "sleep", "60", check=True).stdout.strip()
    try:
        r = daemon.cli("stats", "--no-stream", check=True)
        header, row = r.stdout.splitlines()
        assert _columns(header) == STATS_HEADER
        cols = _columns(row)
        assert cols[0] == cid[:12] and cols[1] == "st1" and cols[2].endswith("%")
        assert cols[3].endswith(" / 64MiB") and cols[7] == "1"
        r = daemon.cli("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "st1", check=True)
        assert r.stdout.startswith("st1 ") and r.stdout.strip().endswith("/ 64MiB")
        r = daemon.cli("stats", "--no-stream", "--format", "json", "st1", check=True)
        assert set(json.loads(r.stdout)) == {"BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name",
                                             "NetIO", "PIDs"}
        r = daemon.cli("stats", "--no-stream", "nosuch")
        assert r.returncode == 1 and "Error response from daemon: No such container: nosuch" in r.stderr

        r = daemon.cli("update", "-m", "32m", "--memory-swap", "64m", "--cpus", "0.5", "--pids-limit", "30", "st1")
        assert r.returncode == 0 and r.stdout.strip() == "st1", r.stderr
        assert _cgroup(daemon, cid, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cgroup(daemon, cid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert _cgroup(daemon, cid, "pids", "pids.max") == "30"
        r = daemon.cli("update", "st1")
        assert r.returncode == 1 and "You must provide one or more flags when using this command." in r.stderr
        r = daemon.cli("update", "--blkio-weight", "300", "st1")
        assert r.returncode == 1 and "berth does not support HostConfig.BlkioWeight yet" in r.stderr
        r = daemon.cli("update", "--cpuset-cpus", "0-99", "st1")
        assert r.returncode == 1 and "Requested CPUs are not available - requested 0-99" in r.stderr

        r = daemon.cli("system", "df", check=True)
        lines = r.stdout.splitlines()
        assert _columns(lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert [_columns(line)[:3] for line in lines[1:]] == [["Images", "1", "1"], ["Containers", "1", "1"],
                                                             ["Local Volumes", "0", "0"], ["Build Cache", "0", "0"]]
        r = daemon.cli("system", "df", "-v", check=True)
        assert "Images space usage:" in r.stdout and "Containers space usage:" in r.stdout
        assert "Build cache usage: 0B" in r.stdout and "st1" in r.stdout
    finally:
        daemon.cli("rm", "-f", cid)


# ------------------------------------------------------------------------------------------ docker CLI

@needs_docker_cli
def test_docker_cli_stats_update_and_system_df(daemon, busybox):
    r = docker_cli(daemon, "run", "-d", "--name", "dst", "busybox", "sleep", "60")
    cid = r.stdout.strip()
    try:
        r = docker_cli(daemon, "stats", "--no-stream")
        assert r.returncode == 0, r.stderr
        header, row = r.stdout.splitlines()
        assert _columns(header) == STATS_HEADER
        cols = _columns(row)
        assert cols[0] == cid[:12] and cols[1] == "dst" and cols[2].endswith("%") and cols[7] == "1"
        r = docker_cli(daemon, "update", "--cpu-shares", "300", "--memory", "48m", "--memory-swap", "96m", "dst")
        assert r.returncode == 0 and r.stdout.strip() == "dst", r.stderr
        assert _cgroup(daemon, cid, "cpu", "cpu.shares") == "300"
        assert _cgroup(daemon, cid, "memory", "memory.limit_in_bytes") == str(48 << 20)
        r = docker_cli(daemon, "inspect", "-f", "{{.HostConfig.CpuShares}} {{.HostConfig.Memory}}", "dst")
        assert r.stdout.strip() == f"300 {48 << 20}"
        r = docker_cli(daemon, "update", "--restart", "always", "dst")
        assert r.returncode == 0, r.stderr
        r = docker_cli(daemon, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "dst")
        assert r.stdout.strip() == "always"
        r = docker_cli(daemon, "update", "--restart", "sometimes", "dst")
        assert r.returncode != 0 and "invalid restart policy: unknown policy 'sometimes'" in r.stderr
        r = docker_cli(daemon, "system", "df")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert _columns(lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert _columns(lines[1])[:3] == ["Images", "1", "1"] and _columns(lines[2])[:3] == ["Containers", "1", "1"]
        r = docker_cli(daemon, "system", "df", "-v")
        assert r.returncode == 0 and "dst" in r.stdout, r.stderr
    finally:
        docker_cli(daemon, "rm", "-f", cid)
