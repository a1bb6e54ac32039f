"""`run`/`create` networking flags: -p/--publish, -P/--publish-all, --expose, --ip, --network-alias,
--mac-address, --link, --add-host, --dns, --dns-search, --dns-option (docker/cli opts and
go-connections nat.ParsePortSpec)."""
from __future__ import annotations

import re


class PortSpecError(ValueError):
    pass


def _range(text: str, what: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise PortSpecError(f"invalid {what}: {text}")
    a, b = int(low), int(high) if sep else int(low)
    if not (0 <= a <= 65535 and 0 <= b <= 65535) or b < a:
        raise PortSpecError(f"invalid {what}: {text}")
    return a, b


def parse_port_spec(spec: str) -> list[tuple[str, str, str]]:
    """`[ip:][hostPort:]containerPort[/proto]` → [(container "80/tcp", host ip, host port)]."""
    raw, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise PortSpecError(f"invalid proto: {proto}")
    ip = ""
    m = re.match(r"^\[([0-9a-fA-F:.]+)\]:(.*)$", raw)
    if m:
        ip, rest = m.group(1), m.group(2)
        parts = rest.split(":")
        host, cport = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    else:
        parts = raw.split(":")
        if len(parts) == 1:
            host, cport = "", parts[0]
        elif len(parts) == 2:
            host, cport = parts
        elif len(parts) == 3:
            ip, host, cport = parts
        else:
            raise PortSpecError(f"invalid port format: {spec}")
    if not cport:
        raise PortSpecError(f"no port specified: {spec}<empty>")
    clow, chigh = _range(cport, "containerPort")
    if clow == 0:
        raise PortSpecError(f"invalid containerPort: {cport}")
    if host:
        hlow, hhigh = _range(host, "hostPort")
        if hhigh - hlow != chigh - clow and chigh != clow:
            raise PortSpecError(f"invalid ranges specified for container and host Ports: {cport} and {host}")
    else:
        hlow = hhigh = None
    out = []
    for i, port in enumerate(range(clow, chigh + 1)):
        if hlow is None:
            hp = ""
        elif chigh == clow and hhigh != hlow:
            hp = f"{hlow}-{hhigh}"
        else:
            hp = str(hlow + i)
        out.append((f"{port}/{proto}", ip, hp))
    return out


def add_flags(p) -> None:
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOSTPORT:]PORT[/PROTO]")
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("--ip")
    p.add_argument("--network-alias", action="append", default=[])
    p.add_argument("--mac-address")
    p.add_argument("--link", action="append", default=[])
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", action="append", default=[])


def apply(args, body: dict) -> None:
    try:
        _apply(args, body)
    except PortSpecError as err:
        from app.cli.main import CommandError
        raise CommandError(str(err)) from None


def _apply(args, body: dict) -> None:
    host = body.setdefault("HostConfig", {})
    exposed = {}
    bindings: dict[str, list] = {}
    for spec in args.publish:
        for key, ip, hp in parse_port_spec(spec):
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    for spec in args.expose:
        port, _, proto = spec.partition("/")
        low, high = _range(port, "port")
        for n in range(low, high + 1):
            exposed[f"{n}/{proto or 'tcp'}"] = {}
    if exposed:
        body["ExposedPorts"] = exposed
    if bindings:
        host["PortBindings"] = bindings
    if args.publish_all:
        host["PublishAllPorts"] = True
    if args.link:
        host["Links"] = [link if ":" in link else f"{link}:{link}" for link in args.link]
    for flag, key in ((args.add_host, "ExtraHosts"), (args.dns, "Dns"), (args.dns_search, "DnsSearch"),
                      (args.dns_option, "DnsOptions")):
        if flag:
            host[key] = list(flag)
    endpoint = {}
    if args.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
    if args.network_alias:
        endpoint["Aliases"] = list(args.network_alias)
    if args.mac_address:
        endpoint["MacAddress"] = args.mac_address
    if endpoint:
        body["NetworkingConfig"] = {"EndpointsConfig": {host.get("NetworkMode") or "default": endpoint}}


def displayable_ports(ports: list[dict]) -> str:
    """docker/cli's DisplayablePorts: `0.0.0.0:8000->80/tcp, 443/tcp`, consecutive ports as ranges."""
    groups: dict[tuple, list[tuple[int, int]]] = {}
    order = []
    for p in sorted(ports, key=lambda p: (p.get("Type", ""), p.get("IP", ""), p.get("PrivatePort", 0),
                                          p.get("PublicPort", 0))):
        key = (p.get("IP", ""), p.get("Type", "tcp"), bool(p.get("PublicPort")))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((p.get("PrivatePort", 0), p.get("PublicPort", 0)))
    out = []
    order.sort(key=lambda k: not k[2])      # docker/cli: host mappings first, then unpublished ports
    for key in order:
        ip, proto, public = key
        runs: list[list[tuple[int, int]]] = []
        for priv, pub in groups[key]:
            last = runs[-1][-1] if runs else None
            if last and priv == last[0] + 1 and (not public or pub == last[1] + 1):
                runs[-1].append((priv, pub))
            else:
                runs.append([(priv, pub)])
        for run in runs:
            priv = f"{run[0][0]}" + (f"-{run[-1][0]}" if len(run) > 1 else "")
            if public:
                pub = f"{run[0][1]}" + (f"-{run[-1][1]}" if len(run) > 1 else "")
                host = f"[{ip}]" if ":" in ip else ip
                out.append(f"{host}:{pub}->{priv}/{proto}")
            else:
                out.append(f"{priv}/{proto}")
    return ", ".join(out)
