"""`version`, `info`, `events`: what `docker version/info/events` print, against the berth API."""
from __future__ import annotations

import json
import os
import sys
import time

from app.cli.client import APIError, CannotConnect
from app.common.filters import to_query
from app.common.timeparse import TimeParseError, format_unix_nano, parse_timestamp, rfc3339_nano
from app.version import API_VERSION, VERSION


def register(sub) -> None:
    v = sub.add_parser("version", help="show the berth version information",
                       description="Show the client's and the daemon's versions.")
    v.add_argument("-f", "--format", help="format the output using a Go template")
    v.set_defaults(func=cmd_version)

    i = sub.add_parser("info", help="display system-wide information")
    i.add_argument("-f", "--format", help="format the output using a Go template")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("events", help="get real time events from the server",
                       description="Stream events from the daemon's durable log. With --since, history "
                                   "is replayed first; with --until, the stream ends at that time.")
    e.add_argument("--since", help="show events created since this timestamp (Unix, RFC 3339 or e.g. 10m)")
    e.add_argument("--until", help="stream events until this timestamp")
    e.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="filter output (type, event, container, image, volume, network, label, daemon …)")
    e.add_argument("--format", help="format the output using a Go template ('json' for JSON lines)")
    e.set_defaults(func=cmd_events)


def _template(fmt: str, data) -> str:
    from app.cli.gotemplate import TemplateError, render
    if fmt == "json":
        fmt = "{{json .}}"
    try:
        return render(fmt, data)
    except TemplateError as err:
        from app.cli.main import CommandError
        raise CommandError(f"template parsing error: {err}") from err


def filter_flags(items: list[str]) -> dict[str, list[str]]:
    from app.common.filters import FilterError, parse_filter_flags
    try:
        return parse_filter_flags(items)
    except FilterError as err:
        from app.cli.main import CommandError
        raise CommandError(str(err)) from err


def _go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# ------------------------------------------------------------------------------------------ version

def cmd_version(args, client) -> int:
    python = "python{}.{}.{}".format(*sys.version_info[:3])    # not `platform`: slow to import
    client_info = {"Version": VERSION, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
                   "GoVersion": python, "Os": "linux", "Arch": _go_arch(), "Context": "default"}
    server, error = None, None
    try:
        server = client.get_json("/version")
    except (CannotConnect, APIError) as err:
        error = err
    if args.format:
        print(_template(args.format, {"Client": client_info, "Server": server}))
    else:
        print("Client:")
        for label, value in (("Version", VERSION), ("API version", API_VERSION), ("Python version", python),
                             ("OS/Arch", f"linux/{_go_arch()}"), ("Context", "default")):
            print(f" {label + ':':<19}{value}")
        if server:
            print()
            print(f"Server: {server.get('Platform', {}).get('Name', '')}")
            for comp in server.get("Components") or []:
                d = comp.get("Details", {})
                print(f" {comp['Name']}:")
                rows = [("Version", comp.get("Version", "")),
                        ("API version", f"{d.get('ApiVersion', '')} (minimum version {d.get('MinAPIVersion', '')})"),
                        ("Python version", d.get("GoVersion", "")), ("Git commit", d.get("GitCommit", "")),
                        ("Built", d.get("BuildTime", "")), ("OS/Arch", f"{d.get('Os', '')}/{d.get('Arch', '')}"),
                        ("Experimental", d.get("Experimental", "false"))]
                for label, value in rows:
                    print(f"  {label + ':':<18}{value}")
    if error is not None:
        raise error
    return 0


# ------------------------------------------------------------------------------------------ info

def _gib(n: int) -> str:
    return f"{n / 1024 ** 3:.2f}GiB"


def cmd_info(args, client) -> int:
    info = client.get_json("/info")
    if args.format:
        print(_template(args.format, info))
        return 0
    lines = [
        "Client:", f" Version:    {VERSION}", " Context:    default", " Debug Mode: false", "",
        "Server:",
        f" Containers: {info['Containers']}", f"  Running: {info['ContainersRunning']}",
        f"  Paused: {info['ContainersPaused']}", f"  Stopped: {info['ContainersStopped']}",
        f" Images: {info['Images']}", f" Server Version: {info['ServerVersion']}",
        f" Storage Driver: {info['Driver']}",
    ]
    lines += [f"  {k}: {v}" for k, v in info.get("DriverStatus") or []]
    plugins = info.get("Plugins") or {}
    lines += [
        f" Logging Driver: {info['LoggingDriver']}", f" Cgroup Driver: {info['CgroupDriver']}",
        f" Cgroup Version: {info['CgroupVersion']}", " Plugins:",
        f"  Volume: {' '.join(plugins.get('Volume') or [])}",
        f"  Network: {' '.join(plugins.get('Network') or [])}",
        f"  Log: {' '.join(plugins.get('Log') or [])}",
        f" Swarm: {info['Swarm']['LocalNodeState']}",
        f" Runtimes: {' '.join(sorted(info.get('Runtimes') or {}))}",
        f" Default Runtime: {info['DefaultRuntime']}",
        f" Kernel Version: {info['KernelVersion']}", f" Operating System: {info['OperatingSystem']}",
        f" OSType: {info['OSType']}", f" Architecture: {info['Architecture']}", f" CPUs: {info['NCPU']}",
        f" Total Memory: {_gib(info['MemTotal'])}", f" Name: {info['Name']}", f" ID: {info['ID']}",
        f" Docker Root Dir: {info['DockerRootDir']}", f" Debug Mode: {str(info['Debug']).lower()}",
        f" Event Listeners: {info['NEventsListener']}",
        f" Experimental: {str(info['ExperimentalBuild']).lower()}", " Insecure Registries:",
    ]
    lines += [f"  {cidr}" for cidr in info["RegistryConfig"].get("InsecureRegistryCIDRs") or []]
    lines.append(f" Live Restore Enabled: {str(info['LiveRestoreEnabled']).lower()}")
    print("\n".join(lines))
    for warning in info.get("Warnings") or []:
        print(warning, file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------ events

def _cli_time(value: str, flag: str) -> str:
    """Convert --since/--until on the client, as the docker CLI does: "<sec>.<nanosec>"."""
    try:
        return format_unix_nano(parse_timestamp(value, time.time_ns()))
    except TimeParseError as err:
        from app.cli.main import CommandError
        raise CommandError(f"invalid value for {flag}: {err}") from err


def format_event(event: dict) -> str:
    """`docker events` default line: time, type, action, actor ID, then sorted attributes."""
    out = ""
    if event.get("timeNano"):
        out = rfc3339_nano(event["timeNano"], utc=False) + " "
    actor = event.get("Actor") or {}
    out += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out


def cmd_events(args, client) -> int:
    filters = filter_flags(args.filter)
    params = {
        "since": _cli_time(args.since, "--since") if args.since else None,
        "until": _cli_time(args.until, "--until") if args.until else None,
        "filters": to_query(filters) if filters else None,
    }
    resp = client.request("GET", "/events", params)
    out = sys.stdout
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        event = json.loads(line)
        out.write((_template(args.format, event) if args.format else format_event(event)) + "\n")
        out.flush()
    return 0
