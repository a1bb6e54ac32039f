"""Container commands: create, start, run, ps, stop, kill, rm, wait, logs (Docker's flags and output).

Foreground `run` attaches before it starts the container (hijacked stream, app/cli/attach.py), so no
output is missed, and exits with the container's code; errors use 125/126/127.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import time
from urllib.parse import quote

from app.cli import netopts

from app.cli.attach import (AttachSession, follow_window_changes, parse_attach_flags, resize_to_terminal,
                            wait_request)
from app.cli.client import APIError, CannotConnect, Client, ProtocolError
from app.cli.system import filter_flags
from app.cli import volumes as volume_flags
from app.common.filters import to_query
from app.common.timeparse import TimeParseError, format_unix_nano, parse_timestamp

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgtp]?)b?$", re.I)


def ram_in_bytes(text: str) -> int:
    """Docker's RAMInBytes: `512m`, `1g`, `100000` (binary units)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * 1024 ** "bkmgtp".index((m.group(2) or "b").lower()))


def register(sub) -> None:
    for cmd, helptext in (("create", "create a new container"), ("run", "create and run a new container")):
        p = sub.add_parser(cmd, help=helptext, add_help=False)   # -h is --hostname, as in Docker
        p.add_argument("--help", action="help", help="show this help message and exit")
        if cmd == "run":
            p.add_argument("-d", "--detach", action="store_true", help="run in the background, print the ID")
            p.add_argument("--rm", action="store_true", help="remove the container when it exits")
        p.add_argument("--name")
        p.add_argument("--restart", help="restart policy: no, always, unless-stopped, on-failure[:N]")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("--env-file", action="append", default=[])
        p.add_argument("-h", "--hostname")
        p.add_argument("--entrypoint")
        p.add_argument("-u", "--user")
        p.add_argument("-w", "--workdir")
        p.add_argument("-l", "--label", action="append", default=[])
        p.add_argument("--stop-signal")
        p.add_argument("--stop-timeout", type=int)
        p.add_argument("-t", "--tty", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("-a", "--attach", action="append", default=[])
        if cmd == "run":
            p.add_argument("--detach-keys")
        p.add_argument("-m", "--memory")
        p.add_argument("--memory-swap")
        p.add_argument("-c", "--cpu-shares", type=int)
        p.add_argument("--cpus", type=float)
        p.add_argument("--pids-limit", type=int)
        p.add_argument("--network", default="default")
        volume_flags.add_run_flags(p)           # -v, --mount, --tmpfs, --volumes-from, --read-only
        netopts.add_flags(p)
        p.add_argument("image")
        p.add_argument("command", nargs=argparse.REMAINDER)
        p.set_defaults(func=cmd_run if cmd == "run" else cmd_create)
    for cmd, helptext in (("pause", "pause all processes within containers"),
                          ("unpause", "unpause all processes within containers"),
                          ("restart", "restart containers"),
                          ("start", "start stopped containers"), ("stop", "stop running containers"),
                          ("kill", "kill running containers"), ("rm", "remove containers"),
                          ("wait", "block until containers stop, then print their exit codes")):
        p = sub.add_parser(cmd, help=helptext)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        if cmd in ("stop", "restart"):
            p.add_argument("-t", "--time", type=int)
            p.add_argument("-s", "--signal")
        if cmd == "kill":
            p.add_argument("-s", "--signal", default="KILL")
        if cmd == "start":
            p.add_argument("-a", "--attach", action="store_true")
            p.add_argument("-i", "--interactive", action="store_true")
            p.add_argument("--detach-keys")
        if cmd == "rm":
            p.add_argument("-f", "--force", action="store_true")
            p.add_argument("-v", "--volumes", action="store_true")
            p.add_argument("-l", "--link", action="store_true", help="remove the specified link")
        p.set_defaults(func=globals()[f"cmd_{cmd}"])
    p = sub.add_parser("attach", help="attach local standard input, output, and error streams to a running "
                                      "container")
    p.add_argument("container")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--detach-keys")
    p.set_defaults(func=cmd_attach)
    p = sub.add_parser("top", help="display the running processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_top)
    p = sub.add_parser("diff", help="inspect changes to files on a container's filesystem")
    p.add_argument("container")
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("export", help="export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output")
    p.add_argument("container")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    p.set_defaults(func=cmd_rename)
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-n", "--last", type=int, default=-1,
                   help="show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true",
                   help="show the latest created container (includes all states)")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="filter output based on conditions provided (repeatable)")
    p.add_argument("--format", help="format output using a Go template ('table …', 'json', 'raw')")
    p.set_defaults(func=cmd_ps)
    p = sub.add_parser("port", help="list port mappings or a specific mapping for the container")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func=cmd_port)
    p = sub.add_parser("logs", help="fetch the logs of a container")
    p.add_argument("container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since")
    p.add_argument("--until")
    p.set_defaults(func=cmd_logs)


def _err(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code


def read_env_file(path: str) -> list[str]:
    """The docker CLI's env-file rules: leading blanks and `#` lines skipped, a value kept as written
    (trailing blanks too), a bare NAME taken from our environment or left out, and names with blanks
    refused."""
    try:
        with open(path, "rb") as fh:
            raw_lines = fh.read().splitlines()
    except OSError as err:
        raise ValueError(f"open {path}: {err.strerror.lower()}") from err
    entries = []
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"invalid env file ({path}): invalid utf8 bytes at line {number}: "
                             f"[{' '.join(str(b) for b in raw)}]") from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        line = text.lstrip()
        if not line or line.startswith("#"):
            continue
        key, has_value, _ = line.partition("=")
        if not key:
            raise ValueError(f"invalid env file ({path}): no variable name on line '{line}'")
        if " " in key or "\t" in key:
            raise ValueError(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if has_value:
            entries.append(line)
        elif key in os.environ:
            entries.append(f"{key}={os.environ[key]}")
    return entries


def _env_flag(value: str) -> str:
    """-e NAME=value as given; -e NAME takes NAME's value from our environment when it is set."""
    if "=" not in value and value in os.environ:
        return f"{value}={os.environ[value]}"
    return value


def _create_body(args) -> dict:
    env = [entry for path in args.env_file for entry in read_env_file(path)]   # files first, as docker
    env += [_env_flag(value) for value in args.env]
    host = {"NetworkMode": args.network}
    if args.memory:
        host["Memory"] = ram_in_bytes(args.memory)
    if args.memory_swap:
        host["MemorySwap"] = -1 if args.memory_swap == "-1" else ram_in_bytes(args.memory_swap)
    if args.cpu_shares is not None:
        host["CpuShares"] = args.cpu_shares
    if args.cpus is not None:
        host["NanoCpus"] = int(args.cpus * 1e9)
    if args.pids_limit is not None:
        host["PidsLimit"] = args.pids_limit
    host["AutoRemove"] = bool(getattr(args, "rm", False))
    from app.cli.restartopt import parse_restart
    if args.restart:
        host["RestartPolicy"] = parse_restart(args.restart)
        if host["AutoRemove"] and host["RestartPolicy"]["Name"] != "no":
            from app.cli.main import CommandError
            raise CommandError("conflicting options: cannot specify both --restart and --rm")
    if args.tty and sys.stdout.isatty():          # the pty gets its size before the process runs
        size = os.get_terminal_size(sys.stdout.fileno())
        host["ConsoleSize"] = [size.lines, size.columns]
    streams = _run_streams(args)
    body = {"Image": args.image, "Env": env, "Labels": dict(l.partition("=")[::2] for l in args.label),
            "Tty": args.tty, "OpenStdin": args.interactive,
            "StdinOnce": args.interactive and "stdin" in streams and not getattr(args, "detach", True),
            "AttachStdin": "stdin" in streams, "AttachStdout": "stdout" in streams,
            "AttachStderr": "stderr" in streams, "HostConfig": host}
    if args.command:
        body["Cmd"] = args.command
    for key, value in (("Hostname", args.hostname), ("User", args.user), ("WorkingDir", args.workdir),
                       ("StopSignal", args.stop_signal), ("StopTimeout", args.stop_timeout)):
        if value is not None:
            body[key] = value
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint] if args.entrypoint else []
    volume_flags.apply_run_flags(args, body)
    netopts.apply(args, body)
    return body


def _create(args, client) -> str:
    resp = client.request("POST", "/containers/create", {"name": args.name}, body=_create_body(args))
    created = json.loads(resp.read())
    for warning in created.get("Warnings") or []:       # as the docker CLI prints them
        print("WARNING:", warning, file=sys.stderr)
    return created["Id"]


def _status_code(message: str) -> int:
    """The docker CLI's mapping of start errors to exit codes."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def cmd_create(args, client) -> int:
    try:
        print(_create(args, client))
    except ValueError as err:
        return _err(f"invalid argument: {err}", 125)
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}", 125)
    return 0


def _run_streams(args) -> set[str]:
    """The streams a foreground run attaches: `-a` as given, else stdout+stderr (+stdin with -i)."""
    if getattr(args, "detach", False):
        return set()
    if args.attach:
        return parse_attach_flags(args.attach)
    return {"stdout", "stderr"} | ({"stdin"} if args.interactive else set())


def cmd_run(args, client) -> int:
    if args.detach and args.attach:
        return _err("Conflicting options: -a and -d", 125)
    try:
        cid = _create(args, client)
    except ValueError as err:
        return _err(f"invalid argument: {err}", 125)
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}", 125)
    if args.detach:
        try:
            client.request("POST", f"/containers/{cid}/start").read()
        except APIError as err:
            return _err(f"Error response from daemon: {err.message}", _status_code(err.message))
        print(cid)
        return 0
    return _attach_and_start(client, cid, _run_streams(args), args.tty, args.detach_keys,
                             "removed" if args.rm else "next-exit")


def _attach_and_start(client, cid: str, streams: set[str], tty: bool, detach_keys, condition: str) -> int:
    """docker's order: attach, ask for the exit code, start, relay; the exit code is the container's."""
    try:
        session = AttachSession(client, cid, streams, tty, detach_keys)
        exit_code = wait_request(client.another, cid, condition)
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}", 125)
    try:
        client.request("POST", f"/containers/{quote(cid)}/start").read()
    except APIError as err:
        session.close()
        return _err(f"Error response from daemon: {err.message}", _status_code(err.message))
    restore = None
    if not tty:
        restore = _proxy_signals(client, cid)
    elif sys.stdout.isatty():
        resize_to_terminal(client, cid)
        restore = follow_window_changes(client.another, cid)
    try:
        session.run()
        if session.detached:
            return 0                        # the container runs on; docker exits 0 here too
        return exit_code()
    finally:
        if restore:
            restore()


def _proxy_signals(client: Client, cid: str):
    """--sig-proxy (the docker CLI's default without a TTY): signals we receive go to the container,
    so Ctrl-C stops the containerised process, not just this client."""
    import signal

    def forward(signum, _frame):        # a client of its own: the handler may land mid-request
        own = client.another()
        try:
            own.request("POST", f"/containers/{quote(cid)}/kill", {"signal": str(signum)}).read()
        except (APIError, CannotConnect, ProtocolError, OSError):
            pass
        finally:
            own.close()

    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
    previous = {sig: signal.signal(sig, forward) for sig in wanted}
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]


def cmd_attach(args, client) -> int:
    info = client.get_json(f"/containers/{quote(args.container)}/json")
    if not info["State"]["Running"]:
        return _err("You cannot attach to a stopped container, start it first", 1)
    if info["State"]["Paused"]:
        return _err("You cannot attach to a paused container, unpause it first", 1)
    tty = bool(info["Config"].get("Tty"))
    streams = {"stdout", "stderr"} | ({"stdin"} if info["Config"].get("OpenStdin") and not args.no_stdin
                                      else set())
    exit_code = wait_request(client.another, info["Id"], "not-running")
    session = AttachSession(client, info["Id"], streams, tty, args.detach_keys)
    restore = None
    if tty and sys.stdout.isatty():
        resize_to_terminal(client, info["Id"])
        restore = follow_window_changes(client.another, info["Id"])
    try:
        session.run()
    finally:
        if restore:
            restore()
    return 0 if session.detached else exit_code()


def _stream_logs(client, cid: str, params: dict, tty: bool) -> None:
    resp = client.request("GET", f"/containers/{quote(cid)}/logs", params)
    if tty:
        while chunk := resp.read1(65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        return
    while header := resp.read(8):
        stream, size = struct.unpack(">BxxxL", header)
        out = sys.stderr.buffer if stream == 2 else sys.stdout.buffer
        out.write(resp.read(size))
        out.flush()


def _each(args, client, action) -> int:
    failed = False
    for name in args.containers:
        try:
            action(name)
            print(name)
        except APIError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_start(args, client) -> int:
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            return _err("you cannot start and attach multiple containers at once", 1)
        try:
            info = client.get_json(f"/containers/{quote(args.containers[0])}/json")
        except APIError as err:
            return _err(f"Error response from daemon: {err.message}", 1)
        config = info["Config"]
        streams = {"stdout", "stderr"} | ({"stdin"} if args.interactive and config.get("OpenStdin") else set())
        condition = "removed" if info["HostConfig"].get("AutoRemove") else "next-exit"
        return _attach_and_start(client, info["Id"], streams, bool(config.get("Tty")), args.detach_keys, condition)
    return _each(args, client, lambda n: client.request("POST", f"/containers/{quote(n)}/start").read())


def cmd_pause(args, client) -> int:
    return _each(args, client, lambda n: client.request("POST", f"/containers/{quote(n)}/pause").read())


def cmd_unpause(args, client) -> int:
    return _each(args, client, lambda n: client.request("POST", f"/containers/{quote(n)}/unpause").read())


def cmd_restart(args, client) -> int:
    return _each(args, client, lambda n: client.request("POST", f"/containers/{quote(n)}/restart",
                                                        {"t": args.time}).read())


def cmd_top(args, client) -> int:
    top = client.get_json(f"/containers/{quote(args.container)}/top",
                          {"ps_args": " ".join(args.ps_args) if args.ps_args else None})
    table = [top["Titles"]] + top["Processes"]
    widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(top["Titles"]))]
    for row in table:
        print("   ".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)))
    return 0


def cmd_diff(args, client) -> int:
    for change in client.get_json(f"/containers/{quote(args.container)}/changes") or []:
        print(f"{'CAD'[change['Kind']]} {change['Path']}")
    return 0


def cmd_export(args, client) -> int:
    if not args.output and sys.stdout.isatty():
        return _err("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    resp = client.request("GET", f"/containers/{quote(args.container)}/export")
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    try:
        while chunk := resp.read1(1 << 20):
            out.write(chunk)
    finally:
        if args.output:
            out.close()
    return 0


def cmd_rename(args, client) -> int:
    client.request("POST", f"/containers/{quote(args.container)}/rename", {"name": args.new_name}).read()
    return 0


def cmd_stop(args, client) -> int:
    return _each(args, client, lambda n: client.request("POST", f"/containers/{quote(n)}/stop",
                                                        {"t": args.time, "signal": args.signal}).read())


def cmd_kill(args, client) -> int:
    return _each(args, client, lambda n: client.request("POST", f"/containers/{quote(n)}/kill",
                                                        {"signal": args.signal}).read())


def cmd_rm(args, client) -> int:
    return _each(args, client, lambda n: client.request(
        "DELETE", f"/containers/{quote(n.lstrip('/') if args.link else n)}", {
            "force": "1" if args.force else None, "v": "1" if args.volumes else None,
            "link": "1" if args.link else None}).read())


def cmd_wait(args, client) -> int:
    failed = False
    for name in args.containers:
        try:
            print(json.loads(client.request("POST", f"/containers/{quote(name)}/wait").read())["StatusCode"])
        except APIError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_logs(args, client) -> int:
    params = {"stdout": "1", "stderr": "1", "follow": "1" if args.follow else None,
              "timestamps": "1" if args.timestamps else None, "tail": args.tail}
    for flag in ("since", "until"):
        value = getattr(args, flag)
        if value:
            try:
                params[flag] = format_unix_nano(parse_timestamp(value, time.time_ns()))
            except TimeParseError as err:
                return _err(f"invalid value for --{flag}: {err}", 1)
    info = client.get_json(f"/containers/{quote(args.container)}/json")
    _stream_logs(client, info["Id"], params, bool(info["Config"].get("Tty")))
    return 0


PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_RAW = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n"
          "state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
          "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n")
PS_HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
              "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
              "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM"}   # docker 28 has no HealthStatus field


def _ps_image(image: str, image_id: str, trunc: bool) -> str:
    """docker/cli's ContainerContext.Image: the familiar reference without a digest, or a short ID."""
    from app.common.reference import ReferenceError, parse_reference
    from app.cli.images import short_id
    if not image:
        return "<no image>"
    if not trunc:
        return image
    if short_id(image_id) == short_id(image):
        return short_id(image_id)
    try:
        return parse_reference(image).without_digest().familiar()
    except ReferenceError:
        return image


def ps_view(c: dict, trunc: bool) -> dict:
    """The fields of docker/cli's container formatter (formatter/container.go), for one API summary."""
    from app.cli.images import ellipsis, short_id, size3
    names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
    if trunc:   # one name, not a legacy link name ("other/alias")
        names = [next((n for n in names if "/" not in n), "")]
    command = c.get("Command") or ""
    size_rw, size_root = c.get("SizeRw") or 0, c.get("SizeRootFs") or 0
    size = size3(size_rw) + (f" (virtual {size3(size_root)})" if size_root > 0 else "")
    mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []]
    labels = c.get("Labels") or {}
    created = c.get("Created", 0)
    return {   # sorted keys: `{{json .}}` prints them as Go marshals a map
        "Command": json.dumps(ellipsis(command, 20) if trunc else command, ensure_ascii=False),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created)),
        "ID": short_id(c["Id"]) if trunc else c["Id"],
        "Image": _ps_image(c.get("Image", ""), c.get("ImageID", ""), trunc),
        "Labels": ",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
        "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
        "Names": ",".join(names),
        "Networks": ",".join(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
        "Platform": None,
        "Ports": netopts.displayable_ports(c.get("Ports") or []),
        "RunningFor": _ago(created),
        "Size": size,
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
    }


def cmd_ps(args, client) -> int:
    from app.cli.images import render_table
    fmt = args.format or ""
    if fmt and args.quiet:
        print("WARNING: Ignoring custom format, because both --format and --quiet are set.", file=sys.stderr)
    limit = args.last if args.last != -1 else (1 if args.latest else -1)     # -n wins over -l, as in docker
    # docker asks for sizes when a custom template uses .Size (`{{json .}}` does too)
    size = args.size or (bool(fmt) and fmt not in ("table", "raw") and not args.quiet
                         and re.search(r"\.Size\b|\bjson\s+\.\s*}}", fmt) is not None)
    params = {"all": "1" if args.all else None, "limit": limit if limit > 0 else None,
              "size": "1" if size else None,
              "filters": to_query(filter_flags(args.filter)) if args.filter else None}
    rows = client.get_json("/containers/json", params) or []
    if fmt in ("", "table"):
        fmt = "{{.ID}}" if args.quiet else PS_TABLE + ("\t{{.Size}}" if size else "")
    elif fmt == "raw":
        fmt = "container_id: {{.ID}}\n" if args.quiet else PS_RAW + ("size: {{.Size}}\n" if size else "")
    elif args.quiet:
        fmt = "{{.ID}}"
    views = [ps_view(r, not args.no_trunc) for r in rows]
    sys.stdout.write(render_table(fmt, views, PS_HEADERS))
    return 0


def _ago(created: int) -> str:
    from app.common.humanize import human_duration
    return human_duration(time.time() - created) + " ago"


def _natural_key(text: str) -> list:
    """sortorder.NaturalLess: runs of digits compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def cmd_port(args, client) -> int:
    try:
        info = client.get_json(f"/containers/{quote(args.container)}/json")
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}", 1)
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}

    def host_port(binding: dict) -> str:
        ip = binding.get("HostIp", "")
        return f"[{ip}]:{binding.get('HostPort', '')}" if ":" in ip else f"{ip}:{binding.get('HostPort', '')}"

    if args.private_port:
        port, _, proto = args.private_port.partition("/")
        if not re.fullmatch(r"\d+", port) or (proto and not re.fullmatch(r"[a-z]+", proto)):
            return _err(f"invalid port '{args.private_port}'", 1)
        bindings = ports.get(f"{port}/{proto or 'tcp'}") or []
        if not bindings:
            return _err(f"no public port '{args.private_port}' published for {args.container}", 1)
        out = [host_port(b) for b in bindings]
    else:
        out = [f"{key} -> {host_port(b)}" for key, bindings in ports.items() for b in bindings or []]
    for line in sorted(out, key=_natural_key):
        print(line)
    return 0
