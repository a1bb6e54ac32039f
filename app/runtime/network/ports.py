"""Published ports: HostConfig.PortBindings / PublishAllPorts / ExposedPorts checked at create, host
ports reserved at start (a socket bound to each, so a port in use is refused and nobody else takes
it meanwhile), and the DNAT rules that carry the traffic at kernel speed (RUNTIME-FACTS Q3)."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from app.errors import InvalidParameter

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class Binding:
    port: int                  # the container's port
    proto: str
    host_ip: str               # "" = every address
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.port}/{self.proto}"


def split_port_key(key: str) -> tuple[int, str]:
    """"80/tcp" (or "80") → (80, "tcp"), moby's texts for bad ones."""
    text, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidParameter(f"invalid proto: {proto}")
    if not text.isdigit() or not text.isascii():
        raise InvalidParameter(f"invalid containerPort: {text}")
    port = int(text)
    if not 0 < port < 65536:
        raise InvalidParameter(f"invalid containerPort: {text}")
    return port, proto


def host_port_range(text: str) -> tuple[int, int]:
    """"" / "0" → (0, 0) (any free port), "8000", "8000-8010"."""
    text = (text or "").strip()
    if text in ("", "0"):
        return 0, 0
    low, sep, high = text.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise InvalidParameter(f"invalid hostPort: {text}")
    a, b = int(low), int(high) if sep else int(low)
    if not (0 < a < 65536 and 0 < b < 65536) or b < a:
        raise InvalidParameter(f"invalid hostPort: {text}")
    return a, b


def exposed_ports(image_config: dict, config: dict) -> list[tuple[int, str]]:
    out = set()
    for source in (image_config.get("ExposedPorts") or {}, config.get("ExposedPorts") or {}):
        for key in source:
            out.add(split_port_key(key))
    return sorted(out)


def validate(host_config: dict, config: dict) -> None:
    """At create: every key, host IP and host port well formed (nothing is reserved yet)."""
    for key in config.get("ExposedPorts") or {}:
        split_port_key(key)
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        split_port_key(key)
        for b in bindings or []:
            host_port_range((b or {}).get("HostPort", ""))
            ip = (b or {}).get("HostIp") or ""
            if ip:
                try:
                    ipaddress.ip_address(ip.strip("[]"))
                except ValueError:
                    raise InvalidParameter(f"invalid IP address: {ip}") from None


def wanted(host_config: dict, config: dict, image_config: dict) -> list[tuple[int, str, str, int, int]]:
    """(port, proto, host_ip, low, high) to publish: the bindings, and with PublishAllPorts every exposed
    port not bound already, on any free host port."""
    out = []
    bound = set()
    for key, bindings in sorted((host_config.get("PortBindings") or {}).items()):
        port, proto = split_port_key(key)
        for b in bindings or [{}]:
            low, high = host_port_range((b or {}).get("HostPort", ""))
            out.append((port, proto, ((b or {}).get("HostIp") or "").strip("[]"), low, high))
            bound.add((port, proto))
    if host_config.get("PublishAllPorts"):
        for port, proto in exposed_ports(image_config, config):
            if (port, proto) not in bound:
                out.append((port, proto, "", 0, 0))
    return out


class Reservation:
    """Host ports held by sockets bound (not listening) for as long as the container publishes them."""

    def __init__(self):
        self.sockets: list[socket.socket] = []

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets = []


def _bind(host_ip: str, port: int, proto: str) -> tuple[socket.socket, int]:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}.get(proto, socket.SOCK_STREAM)
    ipproto = socket.IPPROTO_SCTP if proto == "sctp" else 0
    s = socket.socket(family, kind, ipproto)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.set_inheritable(False)
        s.bind((host_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        return s, s.getsockname()[1]
    except BaseException:
        s.close()
        raise


def reserve(items, what: str) -> tuple[list[Binding], Reservation]:
    """Bind each wanted host port (a range: its first free one; 0: the kernel's ephemeral choice).
    Docker's text when one is taken; nothing stays bound on failure."""
    held = Reservation()
    out = []
    try:
        for port, proto, host_ip, low, high in items:
            shown = host_ip or "0.0.0.0"
            chosen = None
            last_err = None
            for candidate in (range(low, high + 1) if low else [0]):
                try:
                    sock, chosen = _bind(host_ip, candidate, proto)
                    held.sockets.append(sock)
                    break
                except OSError as err:
                    last_err = err
            if chosen is None:
                target = f"{shown}:{low}" if low == high else f"{shown}:{low}-{high}"
                reason = "port is already allocated" if getattr(last_err, "errno", 0) == 98 else str(last_err)
                raise InvalidParameter(f"driver failed programming external connectivity on endpoint {what}: "
                                       f"Bind for {target} failed: {reason}")
            out.append(Binding(port, proto, host_ip, chosen))
    except BaseException:
        held.close()
        raise
    return out, held


def dnat_rules(bindings: list[Binding], ip: str) -> list[str]:
    rules = []
    for b in bindings:
        if ":" in b.host_ip:
            continue                          # IPv6 host addresses: not on this IPv4-only bridge
        dst = f"-d {b.host_ip}/32 " if b.host_ip and b.host_ip != "0.0.0.0" else ""
        rules.append(f"{dst}-p {b.proto} -m {b.proto} --dport {b.host_port} -j DNAT --to-destination "
                     f"{ip}:{b.port}")
    return rules


def ports_map(bindings: list[Binding], exposed: list[tuple[int, str]]) -> dict:
    """inspect's NetworkSettings.Ports: every exposed port, with its bindings or null."""
    out: dict = {f"{p}/{proto}": None for p, proto in exposed}
    for b in bindings:
        out.setdefault(b.key, None)
        if out[b.key] is None:
            out[b.key] = []
        out[b.key].append({"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)})
    return out
