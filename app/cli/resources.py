"""`stats`, `update` and `system df`: a container's resource usage and limits, and the disk the
daemon's objects take, with the docker CLI's flags, columns and formulas (cli/command/container/
stats_helpers.go, formatter/stats.go, update.go, formatter/disk_usage.go)."""
from __future__ import annotations

import json
import sys
import threading
import time
from urllib.parse import quote

from app.cli.client import APIError, CannotConnect, ProtocolError

STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def register(sub) -> None:
    p = sub.add_parser("stats", help="display a live stream of container(s) resource usage statistics")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("--format", help="format output using a Go template ('table …', 'json')")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("update", help="update configuration of one or more containers")
    p.add_argument("--blkio-weight", type=int, help="block IO (relative weight), between 10 and 1000")
    p.add_argument("--cpu-period", type=int, help="limit CPU CFS (Completely Fair Scheduler) period")
    p.add_argument("--cpu-quota", type=int, help="limit CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("--cpu-rt-period", type=int, help="limit the CPU real-time period in microseconds")
    p.add_argument("--cpu-rt-runtime", type=int, help="limit the CPU real-time runtime in microseconds")
    p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    p.add_argument("--cpus", help="number of CPUs")
    p.add_argument("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("-m", "--memory", help="memory limit")
    p.add_argument("--memory-reservation", help="memory soft limit")
    p.add_argument("--memory-swap", help="swap limit equal to memory plus swap: -1 to enable unlimited swap")
    p.add_argument("--pids-limit", type=int, help="tune container pids limit (set -1 for unlimited)")
    p.add_argument("--restart", help="restart policy to apply when a container exits")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_update)
    p = sub.add_parser("system", help="manage berth")
    system = p.add_subparsers(dest="system_command", metavar="COMMAND")
    df = system.add_parser("df", help="show berth disk usage")
    df.add_argument("-v", "--verbose", action="store_true", help="show detailed information on space usage")
    df.add_argument("--format", help="format output using a Go template ('table …', 'json')")
    df.set_defaults(func=cmd_system_df)
    p.set_defaults(func=lambda args, client: (p.print_help(), 0)[1])


# ------------------------------------------------------------------------------------------ sizes

def bytes_size(n: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits ("1.5MiB")."""
    units, i = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"], 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"


def _size3(n: float) -> str:
    from app.cli.images import size3
    return size3(n)


def _human(n: float) -> str:
    from app.common.humanize import human_size
    return human_size(n)


# ------------------------------------------------------------------------------------------ stats

def cpu_percent(sample: dict) -> float:
    """calculateCPUPercentUnix: the container's share of the host's CPU time between the two reads,
    times the number of CPUs."""
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * cpus * 100.0
    return 0.0


def memory_usage(memory: dict) -> float:
    """calculateMemUsageUnixNoCache: usage minus inactive file pages (total_inactive_file on v1)."""
    usage, stats = memory.get("usage", 0), memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        return usage - stats["total_inactive_file"]
    if stats.get("inactive_file", 0) < usage:
        return usage - stats.get("inactive_file", 0)
    return usage


def block_io(blkio: dict) -> tuple[int, int]:
    read = write = 0
    for entry in (blkio or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or "")[:1].lower()
        if op == "r":
            read += entry.get("value", 0)
        elif op == "w":
            write += entry.get("value", 0)
    return read, write


def stats_view(given: str, sample: dict | None, trunc: bool) -> dict:
    """One row of `docker stats`: formatter.StatsEntry as its template fields show it ("--" without data)."""
    if not sample:
        return {"BlockIO": "--", "CPUPerc": "--", "Container": given, "ID": given[:12] if trunc else given,
                "MemPerc": "--", "MemUsage": "-- / --", "Name": "--", "NetIO": "--", "PIDs": "--"}
    memory = sample.get("memory_stats") or {}
    used, limit = memory_usage(memory), memory.get("limit", 0)
    rx = sum(n.get("rx_bytes", 0) for n in (sample.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (sample.get("networks") or {}).values())
    read, write = block_io(sample.get("blkio_stats"))
    cid = sample.get("id", "")
    return {"BlockIO": f"{_size3(read)} / {_size3(write)}", "CPUPerc": f"{cpu_percent(sample):.2f}%",
            "Container": given, "ID": cid[:12] if trunc else cid,
            "MemPerc": f"{used / limit * 100 if limit else 0:.2f}%",
            "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}", "Name": (sample.get("name") or "")[1:] or "--",
            "NetIO": f"{_size3(rx)} / {_size3(tx)}", "PIDs": str((sample.get("pids_stats") or {}).get("current", 0))}


class _Collector:
    """One container's stats stream, on a connection of its own, keeping its latest sample."""

    def __init__(self, client, given: str, stream: bool):
        self.given, self.sample, self.error, self.done = given, None, None, threading.Event()
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(client.another(), stream), daemon=True)
        self.thread.start()

    def _run(self, client, stream: bool) -> None:
        try:
            resp = client.request("GET", f"/containers/{quote(self.given)}/stats",
                                  {"stream": "1" if stream else "0"})
            while line := resp.readline():
                if line.strip():
                    self.sample = json.loads(line)
                    self.first.set()
        except APIError as err:
            self.error = f"Error response from daemon: {err.message}"
        except (CannotConnect, ProtocolError, OSError, ValueError) as err:
            self.error = str(err)
        finally:
            self.first.set()
            self.done.set()
            client.close()


def _list(client, all_: bool) -> list[str]:
    rows = client.get_json("/containers/json", {"all": "1" if all_ else None}) or []
    return [r["Id"] for r in rows]


def _show(fmt: str, rows: list[dict], clear: bool) -> None:
    from app.cli.images import render_table
    text = render_table(fmt, rows, STATS_HEADERS)
    if clear:
        text = "\033[2J\033[H" + text
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_stats(args, client) -> int:
    fmt = args.format or STATS_TABLE
    if fmt == "table":
        fmt = STATS_TABLE
    trunc = not args.no_trunc
    named = list(args.containers)
    collectors: dict[str, _Collector] = {}

    def refresh() -> None:
        for name in named or _list(client, args.all):
            if name not in collectors or (not named and collectors[name].done.is_set() and not args.all):
                collectors[name] = _Collector(client, name, not args.no_stream)

    refresh()
    if args.no_stream:
        for c in collectors.values():
            c.done.wait()
        errors = [c.error for c in collectors.values() if c.error]
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 1
        _show(fmt, [stats_view(n, c.sample, trunc) for n, c in collectors.items()], False)
        return 0
    for c in collectors.values():
        c.first.wait(5)
    errors = [c.error for c in collectors.values() if c.error and named]
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    while True:
        if not named:
            live = set(_list(client, args.all))
            for name in [n for n in collectors if n not in live]:
                del collectors[name]             # gone (stopped, or removed): its row goes, as docker's
            refresh()
        _show(fmt, [stats_view(n, c.sample, trunc) for n, c in collectors.items()], True)
        time.sleep(1)


# ------------------------------------------------------------------------------------------ update

def _bytes(flag: str, value: str | None, allow_unlimited: bool = False) -> int | None:
    from app.cli.containers import ram_in_bytes
    from app.cli.main import CommandError
    if value is None:
        return None
    if allow_unlimited and value.strip() == "-1":
        return -1
    try:
        return ram_in_bytes(value)
    except ValueError:
        raise CommandError(f"invalid argument \"{value}\" for \"{flag}\" flag: invalid size: '{value}'") from None


def update_body(args) -> dict:
    """container.UpdateConfig as the docker CLI fills it from the flags (unset flags: zero values,
    PidsLimit null, RestartPolicy empty)."""
    from app.cli.main import CommandError
    nano = 0
    if args.cpus is not None:
        try:
            nano = round(float(args.cpus) * 1e9)
        except ValueError:
            raise CommandError(f'invalid argument "{args.cpus}" for "--cpus" flag') from None
    from app.cli.restartopt import parse_restart
    policy = parse_restart(args.restart)
    return {"BlkioWeight": args.blkio_weight or 0, "CpuShares": args.cpu_shares or 0, "NanoCpus": nano,
            "CpuPeriod": args.cpu_period or 0, "CpuQuota": args.cpu_quota or 0,
            "CpuRealtimePeriod": args.cpu_rt_period or 0, "CpuRealtimeRuntime": args.cpu_rt_runtime or 0,
            "CpusetCpus": args.cpuset_cpus or "", "CpusetMems": args.cpuset_mems or "",
            "Memory": _bytes("--memory", args.memory) or 0,
            "MemoryReservation": _bytes("--memory-reservation", args.memory_reservation) or 0,
            "MemorySwap": _bytes("--memory-swap", args.memory_swap, allow_unlimited=True) or 0,
            "PidsLimit": args.pids_limit, "RestartPolicy": policy}


def cmd_update(args, client) -> int:
    body = update_body(args)
    if all(v in (0, "", None, {}) for v in body.values()):
        print("You must provide one or more flags when using this command.", file=sys.stderr)
        return 1
    failed = False
    for name in args.containers:
        try:
            resp = client.request("POST", f"/containers/{quote(name)}/update", body=body)
            for warning in json.loads(resp.read() or b"{}").get("Warnings") or []:
                print(warning, file=sys.stderr)
            print(name)
        except APIError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------ system df

def _percent(part: int, total: int) -> str:
    return f"{_human(part)} ({part * 100 // total}%)" if total > 0 else _human(part)


def df_rows(df: dict) -> list[dict]:
    """formatter/disk_usage.go's four summary rows."""
    images, containers = df.get("Images") or [], df.get("Containers") or []
    volumes, cache = df.get("Volumes") or [], df.get("BuildCache") or []
    layers = df.get("LayersSize") or 0
    used = sum(i["Size"] - i["SharedSize"] for i in images
               if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1)
    active = [c for c in containers if any(s in c.get("State", "") for s in ("running", "paused", "restarting"))]
    total_rw = sum(c.get("SizeRw", 0) for c in containers)
    idle_rw = total_rw - sum(c.get("SizeRw", 0) for c in active)
    vol_sizes = [(v.get("UsageData") or {}) for v in volumes]
    vol_total = sum(u.get("Size", 0) for u in vol_sizes if u.get("Size", -1) != -1)
    vol_idle = sum(u.get("Size", 0) for u in vol_sizes if u.get("Size", -1) != -1 and u.get("RefCount") == 0)
    cache_total = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    cache_used = sum(b.get("Size", 0) for b in cache if b.get("InUse") and not b.get("Shared"))
    return [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(sum(1 for i in images if i.get("Containers"))), "Size": _human(layers),
         "Reclaimable": _percent(layers - used, layers)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(active)),
         "Size": _human(total_rw), "Reclaimable": _percent(idle_rw, total_rw)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for u in vol_sizes if u.get("RefCount", 0) > 0)), "Size": _human(vol_total),
         "Reclaimable": _percent(vol_idle, vol_total)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)),
         "Active": str(sum(1 for b in cache if b.get("InUse"))), "Size": _human(cache_total),
         "Reclaimable": _human(cache_total - cache_used)},
    ]


def _verbose(df: dict) -> str:
    from app.cli.containers import ps_view
    from app.cli.images import image_rows, render_table
    images = render_table("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.VirtualSize}}\t"
                          "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", image_rows(df.get("Images") or []),
                          {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                           "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                           "Containers": "CONTAINERS"})
    rows = []
    for c in df.get("Containers") or []:
        view = ps_view(c, True)
        view["Size"] = _size3(c.get("SizeRw", 0))
        rows.append(view)
    containers = render_table("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
                              "{{.RunningFor}}\t{{.Status}}\t{{.Names}}", rows,
                              {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                               "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "RunningFor": "CREATED",
                               "Status": "STATUS", "Names": "NAMES"})
    volumes = render_table("table {{.Name}}\t{{.Links}}\t{{.Size}}",
                           [{"Name": v.get("Name", ""), "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
                             "Size": _human((v.get("UsageData") or {}).get("Size", 0))}
                            for v in df.get("Volumes") or []],
                           {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"})
    cache = df.get("BuildCache") or []
    cache_size = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    cache_table = render_table("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t"
                               "{{.UsageCount}}\t{{.Shared}}", [],
                               {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                                "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE",
                                "Shared": "SHARED"})
    return (f"Images space usage:\n\n{images}\nContainers space usage:\n\n{containers}\n"
            f"Local Volumes space usage:\n\n{volumes}\nBuild cache usage: {_human(cache_size)}\n\n{cache_table}")


def cmd_system_df(args, client) -> int:
    from app.cli.images import render_table
    df = client.get_json("/system/df")
    if args.verbose and not args.format:
        sys.stdout.write(_verbose(df))
        return 0
    fmt = args.format or DF_TABLE
    sys.stdout.write(render_table(DF_TABLE if fmt == "table" else fmt, df_rows(df), DF_HEADERS))
    return 0
