"""The stats readers of app/runtime/host/cgroups.py over fake cgroup trees (v1 controllers and the
unified v2 hierarchy) and /proc/stat, and the docker CLI's formulas in app/cli/resources.py."""
from __future__ import annotations

import os

from app.cli.resources import bytes_size, cpu_percent, df_rows, memory_usage, stats_view, update_body
from app.runtime.host import cgroups


def _write(root, rel: str, text: str) -> None:
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def test_v1_counters_in_dockers_shape(tmp_path):
    d = "p/c1"
    _write(tmp_path, f"cpuacct/{d}/cpuacct.usage", "123456789\n")
    _write(tmp_path, f"cpuacct/{d}/cpuacct.usage_percpu", "100000000 23456789 \n")
    _write(tmp_path, f"cpuacct/{d}/cpuacct.stat", "user 7\nsystem 3\n")
    _write(tmp_path, f"cpu/{d}/cpu.stat", "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n")
    _write(tmp_path, f"memory/{d}/memory.usage_in_bytes", "8192000\n")
    _write(tmp_path, f"memory/{d}/memory.max_usage_in_bytes", "9000000\n")
    _write(tmp_path, f"memory/{d}/memory.failcnt", "0\n")
    _write(tmp_path, f"memory/{d}/memory.limit_in_bytes", "67108864\n")
    _write(tmp_path, f"memory/{d}/memory.stat", "cache 4096\nrss 8000\nshmem 0\ntotal_inactive_file 1024\n")
    _write(tmp_path, f"pids/{d}/pids.current", "3\n")
    _write(tmp_path, f"pids/{d}/pids.max", "max\n")
    _write(tmp_path, f"blkio/{d}/blkio.throttle.io_service_bytes_recursive",
           "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n")
    s = cgroups.read_stats("p", "c1", root=str(tmp_path))
    ticks = cgroups.NANOS // cgroups.CLOCK_TICKS
    assert s["cpu_usage"] == {"total_usage": 123456789, "usage_in_kernelmode": 3 * ticks,
                              "usage_in_usermode": 7 * ticks, "percpu_usage": [100000000, 23456789]}
    assert s["throttling_data"] == {"periods": 10, "throttled_periods": 2, "throttled_time": 5000}
    assert s["memory"] == {"usage": 8192000, "max_usage": 9000000, "failcnt": 0, "limit": 67108864,
                           "stats": {"cache": 4096, "rss": 8000, "total_inactive_file": 1024}}   # moby's keys only
    assert s["pids"] == {"current": 3, "limit": 0}                    # "max": no limit
    assert s["blkio"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096}, {"major": 8, "minor": 0, "op": "Write", "value": 512},
        {"major": 8, "minor": 0, "op": "Total", "value": 4608}]
    assert s["blkio"]["io_queue_recursive"] is None
    assert cgroups.read_stats("p", "gone", root=str(tmp_path)) is None


def test_v2_counters_in_dockers_shape(tmp_path):
    _write(tmp_path, "cgroup.controllers", "cpu memory pids io\n")
    d = "p/c2"
    _write(tmp_path, f"{d}/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                                      "nr_throttled 1\nthrottled_usec 20\n")
    _write(tmp_path, f"{d}/memory.current", "4096000\n")
    _write(tmp_path, f"{d}/memory.max", "max\n")
    _write(tmp_path, f"{d}/memory.stat", "anon 1000\nfile 2000\ninactive_file 512\nzswap 9\n")
    _write(tmp_path, f"{d}/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    _write(tmp_path, f"{d}/pids.current", "2\n")
    _write(tmp_path, f"{d}/pids.max", "50\n")
    _write(tmp_path, f"{d}/io.stat", "8:16 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n")
    s = cgroups.read_stats("p", "c2", root=str(tmp_path))
    assert s["cpu_usage"] == {"total_usage": 1_500_000, "usage_in_kernelmode": 500_000, "usage_in_usermode": 1_000_000}
    assert s["throttling_data"] == {"periods": 4, "throttled_periods": 1, "throttled_time": 20_000}
    assert s["memory"]["usage"] == 4096000 and s["memory"]["failcnt"] == 1
    assert s["memory"]["limit"] == (1 << 64) - 1                     # "max": capped later at the machine's memory
    assert s["memory"]["stats"] == {"anon": 1000, "file": 2000, "inactive_file": 512}
    assert s["pids"] == {"current": 2, "limit": 50}
    assert s["blkio"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 16, "op": "read", "value": 1024}, {"major": 8, "minor": 16, "op": "write", "value": 2048}]


def test_system_cpu_usage_is_mobys_sum_of_seven_fields(tmp_path):
    _write(tmp_path, "stat", "cpu  100 0 50 1000 10 0 5 7 0 0\ncpu0 50 0 25 500 5 0 3 0 0 0\n"
                             "cpu1 50 0 25 500 5 0 2 0 0 0\nintr 1 2 3\n")
    total, cpus = cgroups.system_cpu_usage(os.path.join(str(tmp_path), "stat"))
    assert total == (100 + 50 + 1000 + 10 + 5) * cgroups.NANOS // cgroups.CLOCK_TICKS      # steal not counted
    assert cpus == 2


def test_net_dev_leaves_out_loopback():
    assert cgroups.read_net_dev(os.getpid()) is None or "lo" not in cgroups.read_net_dev(os.getpid())


# ------------------------------------------------------------------------------------------ CLI formulas

def test_cpu_percent_and_memory_as_the_docker_cli():
    sample = {"cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
              "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000}}
    assert cpu_percent(sample) == 200 / 1000 * 2 * 100
    assert cpu_percent({"cpu_stats": {}, "precpu_stats": {}}) == 0.0
    assert memory_usage({"usage": 1000, "stats": {"total_inactive_file": 300}}) == 700       # v1
    assert memory_usage({"usage": 1000, "stats": {"inactive_file": 100}}) == 900              # v2
    assert memory_usage({"usage": 1000, "stats": {"total_inactive_file": 3000}}) == 1000
    assert bytes_size(0) == "0B" and bytes_size(1536) == "1.5KiB" and bytes_size(64 << 20) == "64MiB"


def test_stats_row():
    sample = {"id": "a" * 64, "name": "/web", "memory_stats": {"usage": 2 << 20, "limit": 8 << 20, "stats": {}},
              "pids_stats": {"current": 4}, "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 20}},
              "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096},
                                                             {"op": "write", "value": 10}]},
              "cpu_stats": {}, "precpu_stats": {}}
    assert stats_view("web", sample, True) == {
        "BlockIO": "4.1kB / 10B", "CPUPerc": "0.00%", "Container": "web", "ID": "a" * 12, "MemPerc": "25.00%",
        "MemUsage": "2MiB / 8MiB", "Name": "web", "NetIO": "1.5kB / 20B", "PIDs": "4"}
    assert stats_view("x", None, True)["MemUsage"] == "-- / --"


def test_df_summary_rows_as_the_docker_cli():
    df = {"LayersSize": 1000, "Images": [{"Containers": 1, "Size": 600, "SharedSize": 0},
                                         {"Containers": 0, "Size": 400, "SharedSize": 0}],
          "Containers": [{"State": "running", "SizeRw": 30}, {"State": "exited", "SizeRw": 10}],
          "Volumes": [], "BuildCache": []}
    rows = df_rows(df)
    assert rows[0] == {"Type": "Images", "TotalCount": "2", "Active": "1", "Size": "1kB", "Reclaimable": "400B (40%)"}
    assert rows[1] == {"Type": "Containers", "TotalCount": "2", "Active": "1", "Size": "40B",
                       "Reclaimable": "10B (25%)"}
    assert rows[2]["Reclaimable"] == "0B" and rows[3]["Size"] == "0B"


def test_update_body_is_what_the_docker_cli_sends():
    import argparse
    args = argparse.Namespace(blkio_weight=None, cpu_period=None, cpu_quota=None, cpu_rt_period=None,
                              cpu_rt_runtime=None, cpu_shares=None, cpus="1.5", cpuset_cpus=None, cpuset_mems=None,
                              memory="64m", memory_reservation=None, memory_swap="-1", pids_limit=None, restart=None)
    body = update_body(args)
    assert body["NanoCpus"] == 1_500_000_000 and body["Memory"] == 64 << 20 and body["MemorySwap"] == -1
    assert body["PidsLimit"] is None and body["RestartPolicy"] == {}


# ------------------------------------------------------------------------------------------ attach/ws framing

def test_websocket_frames_both_ways():
    import io
    import struct
    from app.api.container_attach_ws import OP_BINARY, OP_PONG, WsReader, encode_frame, unmask
    assert encode_frame(OP_BINARY, b"hi") == b"\x82\x02hi"
    assert encode_frame(OP_BINARY, b"x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert encode_frame(OP_BINARY, b"x" * 70000)[:2] == b"\x82\x7f"
    key = b"\x01\x02\x03\x04"
    assert unmask(unmask(b"hello world", key), key) == b"hello world"

    def client_frame(opcode: int, payload: bytes) -> bytes:
        return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + key + unmask(payload, key)

    class Out:
        def __init__(self):
            self.frames = []

        def send_frame(self, opcode, payload):
            self.frames.append((opcode, payload))

    out = Out()
    data = client_frame(9, b"p") + client_frame(1, b"text\n") + client_frame(2, b"bin") + client_frame(8, b"")
    reader = WsReader(io.BufferedReader(io.BytesIO(data)), out)
    assert reader.read1() == b"text\n" and out.frames == [(OP_PONG, b"p")]
    assert reader.read1() == b"bin"
    assert reader.read1() == b"" and out.frames[-1] == (8, struct.pack("!H", 1000))
    big = struct.pack("!BBQ", 0x82, 0xFF, 1 << 40) + key         # a 1 TiB claim: refused, nothing read
    out2 = Out()
    assert WsReader(io.BufferedReader(io.BytesIO(big)), out2).read1() == b"" and out2.frames[-1][0] == 8
