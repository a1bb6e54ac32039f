"""Address management: subnets for networks, addresses for endpoints, MACs from addresses.

Pure functions over what is taken; the service calls them inside an append's transaction (a guard), so
the choice and its event are one atomic step (an address is never handed out twice).
"""
from __future__ import annotations

import ipaddress

from app.errors import InvalidParameter

# moby's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s
DEFAULT_POOLS = [("172.17.0.0/12", 16), ("192.168.0.0/16", 20)]


def parse_pool(text: str) -> tuple[str, int]:
    """`--default-address-pool base=10.10.0.0/16,size=24`."""
    fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    try:
        base = ipaddress.ip_network(fields["base"], strict=False)
        size = int(fields.get("size", "24"))
    except (KeyError, ValueError):
        raise InvalidParameter(f"invalid default address pool: {text!r} (want base=CIDR,size=N)") from None
    if not base.prefixlen <= size <= 30:
        raise InvalidParameter(f"invalid default address pool: size {size} must be within {base}")
    return str(base), size


def candidate_subnets(pools):
    for base, size in pools:
        net = ipaddress.ip_network(base, strict=False)
        if net.prefixlen > size:
            continue
        if str(net) == "172.16.0.0/12" and size == 16:     # moby starts at 172.17
            yield from (s for s in net.subnets(new_prefix=size) if s.network_address.packed[1] >= 17)
            continue
        yield from net.subnets(new_prefix=size)


def overlaps(subnet: ipaddress.IPv4Network, others) -> bool:
    return any(subnet.overlaps(o) for o in others if o.version == 4)


def pick_subnet(pools, taken) -> ipaddress.IPv4Network:
    """The first pool subnet that overlaps no host route and no other network (moby's order)."""
    for subnet in candidate_subnets(pools):
        if not overlaps(subnet, taken):
            return subnet
    raise InvalidParameter("could not find an available, non-overlapping IPv4 address pool among the "
                           "defaults to assign to the network")


def first_host(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet.network_address + 1)


def pick_ip(subnet: ipaddress.IPv4Network, reserved: set[str], last: str = "",
            ip_range: ipaddress.IPv4Network | None = None) -> str:
    """The next free address after `last` (moby's allocator is sequential and wraps), skipping the
    network, broadcast and reserved (gateway) addresses."""
    pool = ip_range or subnet
    low = int(pool.network_address) + (1 if pool.network_address == subnet.network_address else 0)
    high = int(pool.broadcast_address) - (1 if pool.broadcast_address == subnet.broadcast_address else 0)
    if high < low:
        raise InvalidParameter("no available IPv4 addresses on this network's address pools")
    start = low
    if last:
        try:
            value = int(ipaddress.ip_address(last)) + 1
            if low <= value <= high:
                start = value
        except ValueError:
            pass
    span = high - low + 1
    for i in range(span):
        candidate = str(ipaddress.ip_address(low + (start - low + i) % span))
        if candidate not in reserved:
            return candidate
    raise InvalidParameter("no available IPv4 addresses on this network's address pools")


def mac_for(ip: str) -> str:
    """moby's genMAC: 02:42 and the four bytes of the address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)


def valid_mac(mac: str) -> str:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise InvalidParameter(f"{mac} is not a valid mac address")
    return mac.lower()
