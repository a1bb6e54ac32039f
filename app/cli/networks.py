"""`network create|ls|inspect|rm|prune|connect|disconnect` (docker/cli cli/command/network)."""
from __future__ import annotations

import json
import sys
from urllib.parse import quote

from app.cli.client import APIError

LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
              "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def _kv(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        out[key] = value
    return out


def register(sub) -> None:
    top = sub.add_parser("network", help="manage networks")
    nsub = top.add_subparsers(dest="network_command", metavar="COMMAND")
    top.set_defaults(func=lambda args, client: (top.print_help(), 1)[1])
    c = nsub.add_parser("create", help="create a network")
    c.add_argument("-d", "--driver", default="bridge")
    c.add_argument("--subnet", action="append", default=[])
    c.add_argument("--gateway", action="append", default=[])
    c.add_argument("--ip-range", action="append", default=[])
    c.add_argument("--internal", action="store_true")
    c.add_argument("--attachable", action="store_true")
    c.add_argument("--ipv6", action="store_true")
    c.add_argument("--label", action="append", default=[])
    c.add_argument("-o", "--opt", action="append", default=[])
    c.add_argument("name")
    c.set_defaults(func=cmd_create)
    ls = nsub.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("-f", "--filter", action="append", default=[])
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("--format")
    ls.add_argument("--no-trunc", action="store_true")
    ls.set_defaults(func=cmd_ls)
    i = nsub.add_parser("inspect", help="display detailed information on networks")
    i.add_argument("-f", "--format")
    i.add_argument("-v", "--verbose", action="store_true")
    i.add_argument("networks", nargs="+")
    i.set_defaults(func=cmd_inspect)
    rm = nsub.add_parser("rm", aliases=["remove"], help="remove networks")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("networks", nargs="+")
    rm.set_defaults(func=cmd_rm)
    pr = nsub.add_parser("prune", help="remove all unused networks")
    pr.add_argument("-f", "--force", action="store_true")
    pr.add_argument("--filter", action="append", default=[])
    pr.set_defaults(func=cmd_prune)
    cn = nsub.add_parser("connect", help="connect a container to a network")
    cn.add_argument("--alias", action="append", default=[])
    cn.add_argument("--ip")
    cn.add_argument("--link", action="append", default=[])
    cn.add_argument("network")
    cn.add_argument("container")
    cn.set_defaults(func=cmd_connect)
    dc = nsub.add_parser("disconnect", help="disconnect a container from a network")
    dc.add_argument("-f", "--force", action="store_true")
    dc.add_argument("network")
    dc.add_argument("container")
    dc.set_defaults(func=cmd_disconnect)


def _fail(err: APIError) -> int:
    print(f"Error response from daemon: {err.message}", file=sys.stderr)
    return 1


def cmd_create(args, client) -> int:
    if len(args.gateway) > len(args.subnet) or len(args.ip_range) > len(args.subnet):
        print("no matching subnet for gateway or ip range", file=sys.stderr)
        return 1
    configs = []
    for n, subnet in enumerate(args.subnet):
        cfg = {"Subnet": subnet}
        if n < len(args.gateway):
            cfg["Gateway"] = args.gateway[n]
        if n < len(args.ip_range):
            cfg["IPRange"] = args.ip_range[n]
        configs.append(cfg)
    body = {"Name": args.name, "Driver": args.driver, "Internal": args.internal, "Attachable": args.attachable,
            "EnableIPv6": args.ipv6, "Options": _kv(args.opt, "opt"), "Labels": _kv(args.label, "label"),
            "IPAM": {"Driver": "default", "Config": configs, "Options": {}}}
    try:
        resp = client.request("POST", "/networks/create", body=body)
    except APIError as err:
        return _fail(err)
    print(json.loads(resp.read())["Id"])
    return 0


def cmd_ls(args, client) -> int:
    from app.cli.images import render_table
    from app.cli.system import filter_flags
    from app.common.filters import to_query
    params = {"filters": to_query(filter_flags(args.filter))} if args.filter else None
    nets = client.get_json("/networks", params) or []
    nets.sort(key=lambda n: n.get("Name", ""))
    fmt = args.format or ""
    if args.quiet:
        fmt = "{{.ID}}"
    elif fmt in ("", "table"):
        fmt = LS_TABLE
    rows = [{"ID": n["Id"] if args.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n.get("Scope", "local"), "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
             "Internal": str(bool(n.get("Internal"))).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in sorted((n.get("Labels") or {}).items())),
             "CreatedAt": n.get("Created", "")} for n in nets]
    sys.stdout.write(render_table(fmt, rows, LS_HEADERS))
    return 0


def cmd_inspect(args, client) -> int:
    from app.cli.system import _template
    found, errors = [], []
    for name in args.networks:
        try:
            found.append(client.get_json(f"/networks/{quote(name, safe='')}",
                                         {"verbose": "true" if args.verbose else None}))
        except APIError as err:
            errors.append(f"Error response from daemon: {err.message}" if err.status != 404 else
                          f"Error: No such network: {name}")
    if args.format:
        sys.stdout.write("".join(_template(args.format, n) + "\n" for n in found))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    return 0


def cmd_rm(args, client) -> int:
    code = 0
    for name in args.networks:
        try:
            client.request("DELETE", f"/networks/{quote(name, safe='')}").read()
            print(name)
        except APIError as err:
            if args.force and err.status == 404:
                continue
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
    return code


def cmd_prune(args, client) -> int:
    from app.cli.system import filter_flags
    from app.common.filters import to_query
    if not args.force:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    params = {"filters": to_query(filter_flags(args.filter))} if args.filter else None
    resp = client.request("POST", "/networks/prune", params, body={})
    deleted = json.loads(resp.read()).get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
    return 0


def cmd_connect(args, client) -> int:
    endpoint = {"Aliases": args.alias, "Links": args.link}
    if args.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
    try:
        client.request("POST", f"/networks/{quote(args.network, safe='')}/connect",
                       body={"Container": args.container, "EndpointConfig": endpoint}).read()
    except APIError as err:
        return _fail(err)
    return 0


def cmd_disconnect(args, client) -> int:
    try:
        client.request("POST", f"/networks/{quote(args.network, safe='')}/disconnect",
                       body={"Container": args.container, "Force": args.force}).read()
    except APIError as err:
        return _fail(err)
    return 0
