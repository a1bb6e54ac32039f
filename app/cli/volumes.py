"""`volume create/ls/inspect/rm/prune` as the docker CLI prints them, berth's `volume orphans`, and
the storage flags of `run`/`create` (-v, --mount, --tmpfs, --volumes-from, --read-only,
--volume-driver), turned into the create body the docker CLI sends."""
from __future__ import annotations

import json
import os
import sys
from urllib.parse import quote

from app.cli.client import APIError
from app.cli.images import _render, render_table
from app.cli.system import filter_flags
from app.common.filters import to_query
from app.common.humanize import human_size

LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
              "Scope": "SCOPE", "Size": "SIZE", "Links": "LINKS"}
ORPHANS_TABLE = "table {{.Name}}\t{{.OrphanedFor}}\t{{.CreatedBy}}\t{{.LastUsedBy}}\t{{.Size}}"
ORPHANS_HEADERS = {"Name": "VOLUME NAME", "OrphanedFor": "ORPHANED", "OrphanedSince": "ORPHANED SINCE",
                   "CreatedBy": "CREATED BY", "LastUsedBy": "LAST USED BY", "Size": "SIZE", "Driver": "DRIVER"}


def _err(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------ commands

def cmd_create(args, client) -> int:
    if args.name and args.name_flag and args.name != args.name_flag:
        return _err(f"conflicting options: cannot specify a volume-name through both --name and as a "
                    f"positional arg")
    body = {"Name": args.name or args.name_flag or "", "Driver": args.driver,
            "DriverOpts": _kv(args.opt, "opt"), "Labels": _kv(args.label, "label")}
    try:
        resp = client.request("POST", "/volumes/create", body=body)
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}")
    print(json.loads(resp.read())["Name"])
    return 0


def _labels_text(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def volume_row(v: dict) -> dict:
    usage = v.get("UsageData") or {}
    return {"Driver": v.get("Driver", ""), "Name": v.get("Name", ""), "Mountpoint": v.get("Mountpoint", ""),
            "Labels": _labels_text(v.get("Labels")), "Scope": v.get("Scope", ""),
            "Size": human_size(usage["Size"]) if "Size" in usage else "N/A",
            "Links": str(usage["RefCount"]) if "RefCount" in usage else "N/A", "Raw": v}


def cmd_ls(args, client) -> int:
    params = {"filters": to_query(filter_flags(args.filter))} if args.filter else None
    try:
        data = client.get_json("/volumes", params)
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}")
    volumes = sorted(data.get("Volumes") or [], key=lambda v: v.get("Name", ""))
    if args.quiet:
        sys.stdout.write("".join(v["Name"] + "\n" for v in volumes))
        return 0
    fmt = args.format or LS_TABLE
    sys.stdout.write(render_table(fmt, [volume_row(v) for v in volumes], LS_HEADERS))
    return 0


def cmd_inspect(args, client) -> int:
    found, failed = [], False
    for name in args.names:
        try:
            found.append(client.get_json(f"/volumes/{quote(name, safe='')}"))
        except APIError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            failed = True
    if args.format:
        sys.stdout.write("".join(_render("{{json .}}" if args.format == "json" else args.format, v) + "\n"
                                 for v in found))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return 1 if failed else 0


def cmd_rm(args, client) -> int:
    failed = False
    for name in args.names:
        try:
            client.request("DELETE", f"/volumes/{quote(name, safe='')}",
                           {"force": "1" if args.force else None}).read()
            print(name)
        except APIError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_prune(args, client) -> int:
    filters = filter_flags(args.filter)
    if args.all:
        filters["all"] = ["true"]
    if not args.force:
        what = "all local volumes" if args.all else "anonymous local volumes"
        sys.stdout.write(f"WARNING! This will remove {what} not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    try:
        resp = client.request("POST", "/volumes/prune", {"filters": to_query(filters)} if filters else None)
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}")
    report = json.loads(resp.read())
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Volumes:\n" + "".join(n + "\n" for n in deleted) + "\n")
    print(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}")
    return 0


def _ago(ns: int | None) -> str:
    import time
    from app.common.humanize import human_duration
    if not ns:
        return ""
    return human_duration(max(0.0, time.time() - ns / 1e9))


def orphan_row(o: dict) -> dict:
    creator = o.get("CreatedBy") or {}
    last = o.get("LastUsedBy") or []
    return {"Name": o["Name"], "Driver": o.get("Driver", ""), "OrphanedSince": o.get("OrphanedSince", ""),
            "OrphanedFor": _ago(o.get("OrphanedSinceNano")),
            "CreatedBy": (f"{creator.get('Name') or creator.get('Id', '')[:12]} ({creator.get('Image', '')})"
                          if creator else "-"),
            "LastUsedBy": ",".join(u.get("Name") or u.get("Id", "")[:12] for u in last) or "-",
            "Size": human_size(o["Size"]) if "Size" in o else "N/A", "Raw": o}


def cmd_orphans(args, client) -> int:
    try:
        data = client.get_json("/berth/volumes/orphans", {"size": "0" if args.no_size else "1"})
    except APIError as err:
        return _err(f"Error response from daemon: {err.message}")
    if args.quiet:
        sys.stdout.write("".join(o["Name"] + "\n" for o in data))
        return 0
    fmt = args.format or ORPHANS_TABLE
    if fmt == "json":
        sys.stdout.write("".join(json.dumps(o) + "\n" for o in data))
        return 0
    sys.stdout.write(render_table(fmt, [orphan_row(o) for o in data], ORPHANS_HEADERS))
    return 0


def register(sub) -> None:
    group = sub.add_parser("volume", help="manage volumes", description="Manage volumes.")
    group.set_defaults(func=lambda args: group.print_help() or 0, needs_client=False)
    vsub = group.add_subparsers(dest="volume_command", metavar="COMMAND")
    p = vsub.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?", metavar="VOLUME")
    p.add_argument("--name", dest="name_flag", help="specify volume name")
    p.add_argument("-d", "--driver", default="local", help="specify volume driver name")
    p.add_argument("-o", "--opt", action="append", default=[], help="set driver specific options")
    p.add_argument("--label", action="append", default=[], help="set metadata for a volume")
    p.set_defaults(func=cmd_create, needs_client=True)
    p = vsub.add_parser("ls", aliases=["list"], help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="only display volume names")
    p.add_argument("-f", "--filter", action="append", default=[], help="provide filter values (e.g. 'dangling=true')")
    p.add_argument("--format", help="format output using a Go template ('table …', 'json')")
    p.set_defaults(func=cmd_ls, needs_client=True)
    p = vsub.add_parser("inspect", help="display detailed information on one or more volumes")
    p.add_argument("-f", "--format", help="format output using a Go template")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_inspect, needs_client=True)
    p = vsub.add_parser("rm", aliases=["remove"], help="remove one or more volumes")
    p.add_argument("-f", "--force", action="store_true", help="force the removal of one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_rm, needs_client=True)
    p = vsub.add_parser("prune", help="remove unused local volumes")
    p.add_argument("-a", "--all", action="store_true", help="remove all unused volumes, not just anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="provide filter values (e.g. 'label=<label>')")
    p.set_defaults(func=cmd_prune, needs_client=True)
    p = vsub.add_parser("orphans", help="volumes no container references: since when, who made and used them")
    p.add_argument("-q", "--quiet", action="store_true", help="only display volume names")
    p.add_argument("--no-size", action="store_true", help="do not compute sizes")
    p.add_argument("--format", help="format output using a Go template ('table …', 'json')")
    p.set_defaults(func=cmd_orphans, needs_client=True)


# ------------------------------------------------------------------------------------------ run flags

def add_run_flags(p) -> None:
    """The storage flags of `run` and `create`."""
    p.add_argument("-v", "--volume", action="append", default=[], help="bind mount a volume")
    p.add_argument("--mount", action="append", default=[], help="attach a filesystem mount to the container")
    p.add_argument("--tmpfs", action="append", default=[], help="mount a tmpfs directory")
    p.add_argument("--volumes-from", action="append", default=[], help="mount volumes from the specified container(s)")
    p.add_argument("--volume-driver", help="optional volume driver for the container")
    p.add_argument("--read-only", action="store_true", help="mount the container's root filesystem as read only")


def _bool_text(value: str, key: str) -> bool:
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def parse_mount_flag(value: str) -> dict:
    """docker CLI's opts.MountOpt: `type=bind,src=/a,dst=/b,readonly,bind-propagation=rshared` …"""
    mount: dict = {"Type": "volume"}
    volume: dict = {}
    bind: dict = {}
    tmpfs: dict = {}
    for field in value.split(","):
        key, sep, val = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
                continue
            if key == "volume-nocopy":
                volume["NoCopy"] = True
                continue
            if key == "bind-nonrecursive":
                bind["NonRecursive"] = True
                continue
            raise ValueError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = val
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool_text(val, key)
        elif key == "consistency":
            mount["Consistency"] = val
        elif key == "bind-propagation":
            bind["Propagation"] = val
        elif key == "bind-create-mountpoint":
            bind["CreateMountpoint"] = _bool_text(val, key)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool_text(val, key)
        elif key == "volume-label":
            k, _, v = val.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-opt":
            k, _, v = val.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            volume["Subpath"] = val
        elif key == "tmpfs-size":
            from app.cli.containers import ram_in_bytes
            tmpfs["SizeBytes"] = ram_in_bytes(val)
        elif key == "tmpfs-mode":
            tmpfs["Mode"] = int(val, 8)
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Target"):
        raise ValueError("target is required")
    kind = mount["Type"]
    for opts, name, allowed in ((bind, "BindOptions", "bind"), (volume, "VolumeOptions", "volume"),
                                (tmpfs, "TmpfsOptions", "tmpfs")):
        if opts:
            if kind != allowed:
                raise ValueError(f"cannot mix '{allowed}-*' options with mount type '{kind}'")
            mount[name] = opts
    return mount


def apply_run_flags(args, body: dict) -> None:
    """-v and friends into the create body, as the docker CLI builds it."""
    host = body.setdefault("HostConfig", {})
    binds, volumes = [], {}
    for spec in args.volume:
        parts = spec.split(":")
        if len(parts) == 1:
            volumes[spec] = {}
            continue
        source = parts[0]
        if source.startswith(".") or source == "~" or source.startswith("~/"):   # the CLI makes them absolute
            source = os.path.abspath(os.path.expanduser(source))
            spec = ":".join([source] + parts[1:])
        binds.append(spec)
    if binds:
        host["Binds"] = binds
    if volumes:
        body["Volumes"] = volumes
    if args.mount:
        host["Mounts"] = [parse_mount_flag(m) for m in args.mount]
    if args.tmpfs:
        tmpfs = {}
        for spec in args.tmpfs:
            target, _, options = spec.partition(":")
            tmpfs[target] = options
        host["Tmpfs"] = tmpfs
    if args.volumes_from:
        host["VolumesFrom"] = list(args.volumes_from)
    if args.volume_driver:
        host["VolumeDriver"] = args.volume_driver
    if args.read_only:
        host["ReadonlyRootfs"] = True
