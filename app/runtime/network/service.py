"""The networks service: networks and endpoints as events, bridges and veth pairs on the host, the
container's /etc files, published ports and links, and berth's own iptables chains.

State. A network is a `network create` event; a container's place on it is a `connect` event whose
payload holds the address allocated for it, inside the append's transaction (the guard), so two
containers never get the same one; it stays the container's across restarts until `disconnect`
(`network disconnect`, or rm). The host side exists only while the container runs: at start, after
`runc create` and before the process runs, a veth pair goes into the namespace runc made (`attach`);
when the container's last process exits the kernel deletes the namespace and the pair with it, and
`detach` drops its rules and port reservations. What ports a running container got is a runtime fact
kept in its bundle (network.json) so a restarted daemon adopts it.

Host state is lazy: a bridge is made when the first endpoint on it starts; berth's chains
(BERTH-FWD-<tag>, BERTH-DNAT-<tag>, BERTH-POST-<tag>, tag = the default bridge's name) are always
rewritten whole from the running endpoints. At shutdown the daemon keeps whatever running containers
use (it is the kernel's) and removes every bridge and chain nothing running uses, so a daemon without
running containers leaves nothing on the host; the next boot adopts what is still there and sweeps
what is not needed.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field

from app.errors import Conflict, Forbidden, InvalidParameter, NotFound
from app.events.model import NewEvent
from app.projections import containers as cq
from app.projections import networks as nq
from app.runtime.containers.spec import extra_hosts, write_etc_files
from app.runtime.network import etcfiles, ipam, links as linkmod, ports as portmod

log = logging.getLogger("berth")

PREDEFINED = ("bridge", "host", "none")
DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}
ALIAS_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Active:
    """A running container's host-side networking."""
    pid: int
    ns_path: str
    ifaces: dict = field(default_factory=dict)      # network ID -> host-side veth name
    bindings: list = field(default_factory=list)    # ports.Binding
    reservation: portmod.Reservation | None = None
    ip: str = ""                                    # the address published ports lead to
    network: str = ""                               # ... on this network


def network_mode_of(host_config: dict) -> str:
    return host_config.get("NetworkMode") or "default"


class Networks:
    def __init__(self, store, host, config, containers):
        self.events = store
        self.netlink = getattr(host, "netlink", None)
        self.iptables = getattr(host, "iptables", None)
        self.containers = containers
        self.bridge_name = getattr(config, "bridge", None) or "berth0"
        self.bip = getattr(config, "bip", None)
        self.pools = [ipam.parse_pool(p) for p in getattr(config, "default_address_pools", None) or []] \
            or list(ipam.DEFAULT_POOLS)
        self.use_iptables = getattr(config, "iptables", True) and self.iptables is not None
        self.icc = getattr(config, "icc", True)
        self.host_gateway_ip = getattr(config, "host_gateway_ip", None)
        self.tag = self.bridge_name
        self.chain_fwd = f"BERTH-FWD-{self.tag}"
        self.chain_dnat = f"BERTH-DNAT-{self.tag}"
        self.chain_post = f"BERTH-POST-{self.tag}"
        self._lock = threading.RLock()          # host-side state of this service; a leaf but for netlink
        self._active: dict[str, Active] = {}
        self._bridges: set[str] = set()         # bridges this daemon has up
        self._jumps = False

    @property
    def enabled(self) -> bool:
        return self.netlink is not None

    # ------------------------------------------------------------------------------ boot and shutdown

    def boot(self) -> None:
        """The predefined networks (bridge, host, none) exist; running containers' networking is
        adopted (their ports reserved again, chains rewritten); bridges and chains nothing running
        needs are removed (a daemon killed with -9 left them)."""
        self._ensure_predefined()
        if not self.enabled:
            return
        live = set(cq.container_ids(self.events, states=cq.LIVE_STATES))
        with self._lock:
            for cid in sorted(live):
                try:
                    self._adopt(cid)
                except Exception:  # noqa: BLE001 - one container must not stop the boot
                    log.exception("adopting the network of %s", cid[:12])
            self._sweep()
            if self._active:
                self._write_rules()
            # a daemon killed with -9: flows DNAT'ed to containers that are gone meanwhile
            self._flush_conntrack(in_subnets=[n.subnet for n in nq.list_networks(self.events)
                                              if n.bridge and n.subnet],
                                  keep_ips=[a.ip for a in self._active.values() if a.ip])

    def _adopt(self, cid: str) -> None:
        row = self.containers.get(cid)
        if row is None or not row.pid:
            return
        try:
            with open(os.path.join(self.containers.bundle(cid), "network.json")) as fh:
                saved = json.load(fh)
        except (OSError, ValueError):
            return
        ns_path = f"/proc/{row.pid}/ns/net"
        if not os.path.exists(ns_path):
            return
        bindings = [portmod.Binding(*b) for b in saved.get("bindings", [])]
        items = [(b.port, b.proto, b.host_ip, b.host_port, b.host_port) for b in bindings]
        try:
            _, held = portmod.reserve(items, row.name)
        except InvalidParameter:
            held = portmod.Reservation()     # someone took it meanwhile; the DNAT still serves it
        active = Active(row.pid, ns_path, dict(saved.get("ifaces", {})), bindings, held,
                        saved.get("ip", ""), saved.get("network", ""))
        for nid in active.ifaces:
            net = nq.get_network(self.events, nid)
            if net is not None and net.bridge:
                self._bridges.add(net.bridge)
        self._active[cid] = active

    def _sweep(self) -> None:
        """Bridges of our networks that nothing running uses, and (with nothing running) our chains."""
        used = {nid for a in self._active.values() for nid in a.ifaces}
        present = self.netlink.bridge_names()
        for net in nq.list_networks(self.events):
            if net.bridge and net.id not in used and net.bridge in present:
                try:
                    self.netlink.delete_link(net.bridge)
                except Exception:  # noqa: BLE001
                    log.exception("removing bridge %s", net.bridge)
                self._bridges.discard(net.bridge)
        if not self._active:
            self._remove_chains()

    def close(self) -> None:
        """Daemon shutdown: running containers keep their networking; everything else goes."""
        if not self.enabled:
            return
        with self._lock:
            for active in self._active.values():
                if active.reservation:
                    active.reservation.close()
            try:
                self._sweep()
                if self._active:
                    self._write_rules()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("network clean-up at shutdown")

    def _ensure_predefined(self) -> None:
        existing = {n.name: n for n in nq.list_networks(self.events)}
        wanted_bridge = self._default_bridge_config(existing.get("bridge"))
        events = []
        current = existing.get("bridge")
        if current is not None and (current.subnet != wanted_bridge["subnet"] or
                                    current.bridge != wanted_bridge["bridge"]):
            if nq.endpoints_of_network(self.events, current.id):
                log.warning("the default bridge keeps %s on %s: containers still use it", current.subnet,
                            current.bridge)
            else:
                events.append(NewEvent("network", "undefine", current.id, {"name": "bridge", "type": "bridge"}))
                current = None
        if current is None:
            events.append(self._create_event(secrets.token_hex(32), {**wanted_bridge}))
        for name in ("host", "none"):
            if name not in existing:
                events.append(self._create_event(secrets.token_hex(32), {
                    "name": name, "driver": DRIVERS[name], "predefined": True, "subnet": "", "gateway": "",
                    "bridge": "", "labels": {}, "options": {}, "internal": False}))
        if events:
            self.events.append(events)

    def _default_bridge_config(self, current) -> dict:
        if self.bip:
            try:
                iface = ipaddress.ip_interface(self.bip)
            except ValueError:
                raise InvalidParameter(f"invalid --bip {self.bip!r}") from None
            subnet, gateway = iface.network, str(iface.ip)
        elif current is not None and current.bridge == self.bridge_name and current.subnet:
            subnet, gateway = ipaddress.ip_network(current.subnet), current.gateway
        else:
            taken = self._taken_subnets(exclude={current.id} if current else set())
            subnet = ipam.pick_subnet(self.pools, taken)
            gateway = ipam.first_host(subnet)
        return {"name": "bridge", "driver": "bridge", "predefined": True, "subnet": str(subnet),
                "gateway": gateway, "bridge": self.bridge_name, "labels": {}, "internal": False,
                "options": {"com.docker.network.bridge.default_bridge": "true",
                            "com.docker.network.bridge.enable_icc": "true" if self.icc else "false",
                            "com.docker.network.bridge.enable_ip_masquerade": "true",
                            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                            "com.docker.network.bridge.name": self.bridge_name,
                            "com.docker.network.driver.mtu": "1500"}}

    def _taken_subnets(self, exclude=frozenset()) -> list:
        taken = [ipaddress.ip_network(s) for nid, s in nq.network_subnets(self.events) if nid not in exclude]
        if self.enabled:
            ours = {n.bridge for n in nq.list_networks(self.events) if n.bridge}
            try:
                taken += [r for r in self.netlink.host_routes()]
            except Exception:  # noqa: BLE001
                log.exception("reading the host's routes")
            del ours
        return taken

    @staticmethod
    def _create_event(nid: str, cfg: dict) -> NewEvent:
        """`create`; the predefined networks are `define`d (bookkeeping: dockerd streams no event for them)."""
        return NewEvent("network", "define" if cfg.get("predefined") else "create", nid,
                        {"name": cfg["name"], "type": cfg["driver"]}, payload=cfg, expected_version=0)

    # ------------------------------------------------------------------------------ lookups

    def resolve(self, ref: str):
        found = nq.find_networks(self.events, ref)
        if len(found) > 1:
            exact = [n for n in found if n.name == ref or n.id == ref]
            if len(exact) == 1:
                return exact[0]
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        if not found:
            raise NotFound(f"network {ref} not found")
        return found[0]

    def list(self):
        return nq.list_networks(self.events)

    def endpoints(self, nid: str):
        return nq.endpoints_of_network(self.events, nid)

    def active(self, cid: str) -> Active | None:
        return self._active.get(cid)

    # ------------------------------------------------------------------------------ network create / rm

    def create_network(self, body: dict) -> tuple[str, str]:
        """POST /networks/create. Returns (id, warning)."""
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("network name is required")
        if "/" in name or "\x00" in name or len(name) > 255:
            raise InvalidParameter(f"invalid network name {name!r}")
        driver = body.get("Driver") or "bridge"
        if name in PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        if driver != "bridge":
            raise NotFound(f"plugin \"{driver}\" not found") if driver not in ("host", "null", "overlay",
                                                                               "macvlan", "ipvlan") else \
                InvalidParameter(f"berth does not support network driver {driver} yet")
        if nq.network_by_name(self.events, name) is not None:
            raise Conflict(f"network with name {name} already exists")
        if body.get("EnableIPv6"):
            raise InvalidParameter("berth does not support IPv6 networks yet")
        ipam_cfg = body.get("IPAM") or {}
        if (ipam_cfg.get("Driver") or "default") != "default":
            raise InvalidParameter(f"berth does not support IPAM driver {ipam_cfg.get('Driver')} yet")
        configs = ipam_cfg.get("Config") or []
        if len(configs) > 1:
            raise InvalidParameter("berth supports one IPAM config (one IPv4 subnet) per network")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        nid = secrets.token_hex(32)
        bridge = options.get("com.docker.network.bridge.name") or ("berth" + nid[:10])
        if len(bridge) > 15 or not re.match(r"^[a-zA-Z0-9_.-]+$", bridge):
            raise InvalidParameter(f"invalid bridge name {bridge!r}")
        if bridge == self.bridge_name or any(n.bridge == bridge for n in nq.list_networks(self.events)):
            raise Conflict(f"bridge name {bridge} is already in use by another network")
        taken = self._taken_subnets()
        cfg = configs[0] if configs else {}
        ip_range = None
        if cfg.get("Subnet"):
            try:
                subnet = ipaddress.ip_network(cfg["Subnet"], strict=False)
            except ValueError:
                raise InvalidParameter(f"invalid subnet {cfg['Subnet']}") from None
            if subnet.version != 4:
                raise InvalidParameter("berth does not support IPv6 networks yet")
            if subnet.prefixlen > 30:
                raise InvalidParameter(f"subnet {subnet} is too small")
            if ipam.overlaps(subnet, taken):
                raise Forbidden("Pool overlaps with other one on this address space")
        else:
            if cfg.get("Gateway") or cfg.get("IPRange"):
                raise InvalidParameter("a gateway or an IP range needs a subnet")
            subnet = ipam.pick_subnet(self.pools, taken)
        gateway = cfg.get("Gateway") or ipam.first_host(subnet)
        try:
            if ipaddress.ip_address(gateway) not in subnet:
                raise InvalidParameter(f"no matching subnet for gateway {gateway}")
        except ValueError:
            raise InvalidParameter(f"invalid gateway address {gateway}") from None
        if cfg.get("IPRange"):
            try:
                ip_range = ipaddress.ip_network(cfg["IPRange"], strict=False)
            except ValueError:
                raise InvalidParameter(f"invalid ip range {cfg['IPRange']}") from None
            if not ip_range.subnet_of(subnet):
                raise InvalidParameter(f"no matching subnet for range {ip_range}")
        aux = {str(k): str(v) for k, v in (cfg.get("AuxiliaryAddresses") or {}).items()}
        for value in aux.values():
            try:
                if ipaddress.ip_address(value) not in subnet:
                    raise InvalidParameter(f"no matching subnet for aux-address {value}")
            except ValueError:
                raise InvalidParameter(f"invalid auxiliary address {value}") from None
        payload = {"name": name, "driver": "bridge", "predefined": False, "subnet": str(subnet), "aux": aux,
                   "gateway": gateway, "ip_range": str(ip_range) if ip_range else "", "bridge": bridge,
                   "internal": bool(body.get("Internal")), "attachable": bool(body.get("Attachable")),
                   "labels": {str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                   "options": options, "ipam_options": dict(ipam_cfg.get("Options") or {}),
                   "ipam_config": [{"Subnet": str(subnet), "Gateway": gateway,
                                    **({"IPRange": str(ip_range)} if ip_range else {}),
                                    **({"AuxiliaryAddresses": aux} if aux else {})}]}

        def guard(conn):
            if nq.network_by_name(conn, name) is not None:
                raise Conflict(f"network with name {name} already exists")
            for other_id, other in nq.network_subnets(conn):
                if ipaddress.ip_network(other).overlaps(subnet):
                    raise Forbidden("Pool overlaps with other one on this address space")

        self.events.append([self._create_event(nid, payload)], guard=guard)
        return nid, ""

    def remove_network(self, ref: str) -> None:
        net = self.resolve(ref)
        if net.config.get("predefined"):
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")

        def guard(conn):
            eps = nq.endpoints_of_network(conn, net.id)
            if eps:
                raise Forbidden(f"error while removing network: network {net.name} id {net.id} has active "
                                "endpoints")

        self.events.append([NewEvent("network", "destroy", net.id, {"name": net.name, "type": net.driver},
                                     expected_version=None)], guard=guard)
        if self.enabled and net.bridge:
            with self._lock:
                self._bridges.discard(net.bridge)
                try:
                    self.netlink.delete_link(net.bridge)
                except Exception:  # noqa: BLE001
                    log.exception("removing bridge %s", net.bridge)
                if self._jumps:
                    self._write_rules()

    def prune(self, keep=lambda net: False) -> list[str]:
        out = []
        for net in self.list():
            if net.config.get("predefined") or keep(net) or nq.endpoints_of_network(self.events, net.id):
                continue
            try:
                self.remove_network(net.id)
            except (Forbidden, NotFound, Conflict):
                continue
            out.append(net.name)
        self.events.append([NewEvent("network", "prune", "", {})])
        return out

    # ------------------------------------------------------------------------------ connect / disconnect

    def _endpoint_request(self, settings: dict | None, net, cname: str) -> dict:
        settings = settings or {}
        aliases = [str(a) for a in settings.get("Aliases") or []]
        for alias in aliases:
            if not ALIAS_RE.match(alias):
                raise InvalidParameter(f"invalid network alias {alias!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        ipam_cfg = settings.get("IPAMConfig") or {}
        if ipam_cfg.get("IPv6Address"):
            raise InvalidParameter("berth does not support IPv6 addresses (IPAMConfig.IPv6Address) yet")
        link_local = [str(x) for x in ipam_cfg.get("LinkLocalIPs") or []]
        for addr in link_local:          # moby: extra addresses on the interface, IPv4 ones in 169.254/16
            try:
                parsed = ipaddress.ip_address(addr)
            except ValueError:
                raise InvalidParameter(f"invalid link-local IP address: {addr}") from None
            if parsed.version != 4:
                raise InvalidParameter("berth does not support IPv6 addresses (IPAMConfig.LinkLocalIPs) yet")
        ip = (ipam_cfg.get("IPv4Address") or "").strip()
        if ip:
            if net.config.get("predefined"):
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            try:
                if ipaddress.ip_address(ip) not in ipaddress.ip_network(net.subnet):
                    raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {ip}")
            except ValueError:
                raise InvalidParameter(f"invalid IPv4 address: {ip}") from None
            if ip == net.gateway:
                raise Conflict(f"Address already in use: {ip}")
        mac = settings.get("MacAddress") or ""
        if mac:
            mac = ipam.valid_mac(mac)
        if aliases and net.config.get("predefined"):
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        links = [str(x) for x in settings.get("Links") or []]
        driver_opts = {str(k): str(v) for k, v in (settings.get("DriverOpts") or {}).items()}
        return {"aliases": aliases, "ip": ip, "mac": mac, "static_ip": bool(ip), "static_mac": bool(mac),
                "links": links, "name": cname, "driver_opts": driver_opts, "link_local_ips": link_local}

    def connect_events(self, cid: str, net, request: dict, cname: str) -> tuple[NewEvent, callable]:
        """The connect event for `cid` on `net` and its guard, which picks the address (or checks the one
        asked for) against the endpoints as they are inside the append's transaction."""
        payload = dict(request)
        event = NewEvent("network", "connect", net.id, {"container": cid, "name": net.name, "type": net.driver},
                         payload=payload)

        def guard(conn):
            if nq.get_network(conn, net.id) is None:
                raise NotFound(f"network {net.name} not found")
            for ep in nq.endpoints_of_network(conn, net.id):
                if ep.container == cid:
                    raise Forbidden(f"endpoint with name {cname} already exists in network {net.name}")
            if not net.subnet:
                return
            taken = nq.taken_ips(conn, net.id) | {net.gateway} | set((net.config.get("aux") or {}).values())
            if payload.get("static_ip"):
                if payload["ip"] in taken:
                    raise Conflict(f"Address already in use: {payload['ip']}")
            else:
                fresh = nq.get_network(conn, net.id)
                ip_range = ipaddress.ip_network(net.config["ip_range"]) if net.config.get("ip_range") else None
                payload["ip"] = ipam.pick_ip(ipaddress.ip_network(net.subnet), taken, fresh.last_ip, ip_range)
            if not payload.get("mac"):
                payload["mac"] = ipam.mac_for(payload["ip"])
            payload["prefixlen"] = ipaddress.ip_network(net.subnet).prefixlen
            payload["gateway"] = net.gateway
            payload["endpoint_id"] = secrets.token_hex(32)

        return event, guard

    def plan_create(self, cid: str, config: dict, host_config: dict, networking_config: dict, cname_hint: str = ""
                    ) -> tuple[list, callable]:
        """Create hook: check the network settings; return the connect events to append with the
        container's create event and a guard for them (its own, chained with the create's)."""
        portmod.validate(host_config, config)
        mode = network_mode_of(host_config)
        endpoints = dict((networking_config or {}).get("EndpointsConfig") or {})
        if config.get("MacAddress"):
            ipam.valid_mac(config["MacAddress"])
        for entry in host_config.get("Links") or []:
            name, _ = linkmod.parse_link(entry)
            try:
                self.containers.resolve(name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {name}") from None
        if mode in ("host", "none") or mode.startswith("container:"):
            if mode == "host" and not config.get("Hostname"):
                import socket
                config["Hostname"] = socket.gethostname()        # moby: the host's name on its network
            if mode.startswith("container:"):
                target = mode.split(":", 1)[1]
                if not target:
                    raise InvalidParameter("invalid network mode: container:")
                try:
                    host_config["NetworkMode"] = "container:" + self.containers.resolve(target).id
                except NotFound:
                    raise NotFound(f"No such container: {target}") from None
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the container type network mode"
                                       if mode.startswith("container:") else
                                       "conflicting options: port publishing and the host network mode"
                                       if mode == "host" else
                                       "conflicting options: port publishing and the none network mode")
            if host_config.get("Links"):
                raise InvalidParameter("conflicting options: links and the " + mode.split(":")[0] + " network mode")
            if mode.startswith("container:") and (config.get("Hostname") or host_config.get("Dns") or
                                                   host_config.get("ExtraHosts")):
                raise InvalidParameter("conflicting options: hostname, dns or add-host and the network mode")
            if config.get("MacAddress") and mode != "none":
                raise InvalidParameter("conflicting options: mac-address and the network mode")
            for key, value in endpoints.items():
                if key not in (mode, mode.split(":")[0]) and value:
                    raise InvalidParameter(f"Container cannot be connected to network endpoints: {mode}, {key}")
            return [], lambda conn: None
        primary = "bridge" if mode == "default" else mode
        net = self.resolve(primary)
        if net.driver != "bridge":
            raise InvalidParameter(f"container cannot be connected to network {net.name} of driver {net.driver}")
        wanted = [(net, endpoints.pop(primary, None) or endpoints.pop(net.name, None) or
                   endpoints.pop(net.id, None) or {})]
        for key, settings in endpoints.items():
            if key in ("default", primary):
                continue
            other = self.resolve(key)
            if other.driver != "bridge":
                raise InvalidParameter(f"Container cannot be connected to network endpoints: {primary}, {key}")
            wanted.append((other, settings or {}))
        if host_config.get("Links") and not net.config.get("predefined"):
            pass                                # on a user network a link is an alias in /etc/hosts
        events, guards = [], []
        for i, (n, settings) in enumerate(wanted):
            settings = dict(settings)
            if i == 0 and config.get("MacAddress") and not settings.get("MacAddress"):
                settings["MacAddress"] = config["MacAddress"]
            request = self._endpoint_request(settings, n, cname_hint)
            ev, guard = self.connect_events(cid, n, request, cname_hint)
            events.append(ev)
            guards.append(guard)

        def guard_all(conn):
            for g in guards:
                g(conn)
        return events, guard_all

    def connect(self, ref_net: str, ref_container: str, settings: dict | None) -> None:
        """POST /networks/{id}/connect, on a created, stopped or running container."""
        net = self.resolve(ref_net)
        row = self.containers.resolve(ref_container)
        if net.driver != "bridge":
            raise Forbidden(f"container cannot be disconnected from host network or connected to host network"
                            if net.driver == "host" else
                            f"container cannot be connected to network {net.name} of driver {net.driver}")
        mode = network_mode_of(row.host_config)
        if mode in ("host", "none") or mode.startswith("container:"):
            raise Forbidden(f"container sharing network namespace with another container or host cannot be "
                            f"connected to any other network" if mode != "none" else
                            "container cannot be connected to multiple networks with one of the networks in "
                            "private (none) mode")
        with self.containers._locked(row.id):
            row = self.containers.get(row.id)
            if row is None:
                raise NotFound(f"No such container: {ref_container}")
            request = self._endpoint_request(settings or {}, net, row.name)
            ev, guard = self.connect_events(row.id, net, request, row.name)
            self.events.append([ev], guard=guard)
            if row.state in ("running", "paused") and self.enabled and row.id in self._active:
                try:
                    self._attach_one(row, nq.endpoints_of_container(self.events, row.id), net.id)
                    self._refresh_hosts(net.id)
                except Exception:
                    self.events.append([NewEvent("network", "disconnect", net.id, {
                        "container": row.id, "name": net.name, "type": net.driver})])
                    raise

    def disconnect(self, ref_net: str, ref_container: str, force: bool) -> None:
        net = self.resolve(ref_net)
        try:
            row = self.containers.resolve(ref_container)
        except NotFound:
            if not force:
                raise
            eps = [ep for ep in nq.endpoints_of_network(self.events, net.id)
                   if ep.container.startswith(ref_container) or ep.config.get("name") == ref_container]
            for ep in eps:
                self.events.append([NewEvent("network", "disconnect", net.id, {
                    "container": ep.container, "name": net.name, "type": net.driver})])
            return
        if net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        with self.containers._locked(row.id):
            eps = {ep.network: ep for ep in nq.endpoints_of_container(self.events, row.id)}
            if net.id not in eps:
                raise Forbidden(f"container {row.id} is not connected to network {net.name}")
            active = self._active.get(row.id)
            if active is not None and net.id in active.ifaces and self.enabled:
                with self._lock:
                    try:
                        self.netlink.delete_link(active.ifaces[net.id])      # both ends of the pair go
                    except Exception:  # noqa: BLE001 - the container may be exiting
                        log.exception("removing %s from %s", net.name, row.id[:12])
                    active.ifaces.pop(net.id, None)
                    if active.network == net.id:
                        active.ip, active.network = "", ""
                    self._save_active(row.id, active)
                    self._write_rules()
            self.events.append([NewEvent("network", "disconnect", net.id, {
                "container": row.id, "name": net.name, "type": net.driver})])
            self._refresh_hosts(net.id)

    def release_events(self, cid: str) -> list[NewEvent]:
        """rm: a disconnect for each network the container is on (frees its addresses)."""
        out = []
        for ep in nq.endpoints_of_container(self.events, cid):
            net = nq.get_network(self.events, ep.network)
            out.append(NewEvent("network", "disconnect", ep.network, {
                "container": cid, "name": net.name if net else "", "type": net.driver if net else "bridge"}))
        return out

    def after_destroy(self, cid: str, networks: list[str]) -> None:
        for nid in networks:
            self._refresh_hosts(nid)

    # ------------------------------------------------------------------------------ start / exit

    def prepare(self, row, bundle: str, hostname: str) -> tuple[dict, str | None, dict]:
        """Start hook, before the spec: the /etc files, the namespace to join (container:<id>), and the
        config with the links' environment."""
        mode = network_mode_of(row.host_config)
        config = row.config
        if mode.startswith("container:"):
            other = self._other_container(mode.split(":", 1)[1])
            other_bundle = self.containers.bundle(other.id)
            etc = {f"/etc/{n}": os.path.join(other_bundle, n) for n in ("hostname", "hosts", "resolv.conf")}
            return etc, f"/proc/{other.pid}/ns/net", config
        etc = write_etc_files(bundle, hostname, row.host_config)     # hostname, then hosts/resolv below
        resolv = etcfiles.resolv_text(row.host_config, network_mode="host" if mode == "host" else "bridge")
        etcfiles.write_in_place(etc["/etc/resolv.conf"], resolv)
        link_env = []
        if mode != "host" and mode != "none":
            link_env = self._links_env(row)
        etcfiles.write_in_place(etc["/etc/hosts"], self._hosts_for(row, hostname))
        if link_env:
            config = {**config, "Env": link_env + list(config.get("Env") or [])}
        return etc, None, config

    def _other_container(self, ref: str):
        try:
            other = self.containers.resolve(ref)
        except NotFound:
            raise NotFound(f"No such container: {ref}") from None
        if other.state not in ("running", "paused") or not other.pid:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        return other

    def _links(self, row) -> list[tuple[object, str]]:
        out = []
        for entry in row.host_config.get("Links") or []:
            name, alias = linkmod.parse_link(entry)
            try:
                child = self.containers.resolve(name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {name}") from None
            out.append((child, alias))
        return out

    def _links_env(self, row) -> list[str]:
        env = []
        for child, alias in self._links(row):
            if child.state not in ("running", "paused"):
                raise InvalidParameter(f"Cannot link to a non running container: /{child.name} AS /{row.name}/{alias}")
            ip = self._primary_ip(child.id)
            image_cfg = self._image_config(child)
            ports = portmod.exposed_ports(image_cfg, child.config)
            env += linkmod.link_env(alias, row.name, child.name, ip, ports, self._env_of(child, image_cfg))
        return env

    def _image_config(self, row) -> dict:
        try:
            image_row, _ = self.containers.images.resolve(row.image_id)
            return image_row.config.get("config") or {}
        except (NotFound, InvalidParameter):
            return {}

    @staticmethod
    def _env_of(row, image_cfg) -> list[str]:
        return list(row.config.get("Env") or [])

    def _primary_ip(self, cid: str) -> str:
        active = self._active.get(cid)
        if active is not None and active.ip:
            return active.ip
        eps = nq.endpoints_of_container(self.events, cid)
        return eps[0].ip if eps else ""

    def _host_gateway(self) -> str:
        """What --add-host NAME:host-gateway maps to: --host-gateway-ip, else the default bridge's gateway."""
        if self.host_gateway_ip:
            return self.host_gateway_ip
        net = nq.network_by_name(self.events, "bridge")
        return (net.gateway if net is not None else "") or ""

    def _hosts_for(self, row, hostname: str) -> str:
        mode = network_mode_of(row.host_config)
        extra = extra_hosts(row.host_config, self._host_gateway())
        if mode == "host":
            try:
                with open("/etc/hosts", errors="replace") as fh:
                    return fh.read() + "".join(f"{ip}\t{name}\n" for name, ip in extra)
            except OSError:
                pass
        eps = nq.endpoints_of_container(self.events, row.id)
        own = []
        domain = row.config.get("Domainname") or ""
        names = hostname + (f"{hostname}.{domain} {hostname}" if False else "")
        if eps and eps[0].ip:
            own.append((eps[0].ip, f"{hostname}.{domain} {hostname}" if domain else names))
        links = []
        for child, alias in (self._links(row) if mode not in ("none",) else []):
            ip = self._primary_ip(child.id)
            if ip:
                names_ = [alias] + ([child.id[:12]] if True else []) + ([child.name] if child.name != alias else [])
                links.append((ip, names_))
        peers = []
        for ep in eps:
            net = nq.get_network(self.events, ep.network)
            if net is None or net.config.get("predefined"):
                continue
            for other in nq.endpoints_of_network(self.events, ep.network):
                if other.container == row.id or not other.ip:
                    continue
                orow = self.containers.get(other.container)
                if orow is None or orow.state not in ("running", "paused"):
                    continue
                onames = [orow.name] + [a for a in other.aliases if a != orow.name] + [orow.id[:12]]
                onames += [f"{orow.name}.{net.name}"]
                peers.append((other.ip, onames))
            for entry in ep.config.get("links") or []:
                lname, alias = linkmod.parse_link(entry)
                target = next((p for p in peers if lname in p[1]), None)
                if target:
                    peers.append((target[0], [alias]))
        return etcfiles.hosts_text(own, extra, links, peers)

    def remove_link(self, ref: str) -> None:
        """DELETE /containers/{id}?link=1 (`rm -l /linker/alias`)."""
        linkmod.remove_link(self, ref)

    def _refresh_hosts(self, nid: str) -> None:
        """Every running container on user network `nid` gets its /etc/hosts rewritten (names of the
        containers running on it now)."""
        net = nq.get_network(self.events, nid)
        if net is None or net.config.get("predefined"):
            return
        for ep in nq.endpoints_of_network(self.events, nid):
            row = self.containers.get(ep.container)
            if row is None or row.state not in ("running", "paused"):
                continue
            hostname = row.config.get("Hostname") or row.id[:12]
            try:
                etcfiles.write_in_place(os.path.join(self.containers.bundle(row.id), "hosts"),
                                        self._hosts_for(row, hostname))
            except (OSError, InvalidParameter):
                log.exception("rewriting /etc/hosts of %s", row.id[:12])

    @staticmethod
    def _ifname_of(cid: str, nid: str, index: int | None = None) -> str:
        return "eth0" if index in (None, 0) else f"eth{index}"

    @staticmethod
    def _host_if(cid: str, nid: str) -> str:
        return "berthv" + format(int(cid[:8], 16) ^ int(nid[:8], 16), "08x")[:8] + cid[8]

    def attach(self, row, pid: int) -> None:
        """Start hook, after `runc create` and before the process runs: the container's endpoints on the
        host, its published ports reserved and their DNAT rules written. Undone by `detach`."""
        mode = network_mode_of(row.host_config)
        if not self.enabled or mode in ("host", "none") or mode.startswith("container:"):
            return
        eps = nq.endpoints_of_container(self.events, row.id)
        ns_path = f"/proc/{pid}/ns/net"
        with self._lock:
            active = Active(pid, ns_path)
            self._active[row.id] = active
            try:
                for ep in eps:
                    self._attach_one(row, eps, ep.network, active)
                if eps:
                    active.ip, active.network = eps[0].ip, eps[0].network
                image_cfg = self._image_config(row)
                items = portmod.wanted(row.host_config, row.config, image_cfg)
                if items:
                    if not self.use_iptables:
                        raise InvalidParameter("publishing ports needs iptables: the daemon runs with "
                                               "--iptables=false")
                    if not active.ip:
                        raise InvalidParameter("publishing ports needs a network with addresses")
                    active.bindings, active.reservation = portmod.reserve(items, f"{row.name} ({row.id[:12]})")
                self._save_active(row.id, active)
                if active.bindings or (not self.icc and row.host_config.get("Links")):
                    self._write_rules()     # else nothing per container: run --rm stays cheap
                if any(b.proto == "udp" for b in active.bindings):
                    self._flush_conntrack(udp_ports=[b.host_port for b in active.bindings if b.proto == "udp"])
            except BaseException:
                self._detach_locked(row.id)
                raise
        for ep in eps:
            self._refresh_hosts(ep.network)
        linkmod.refresh_parents(self, row)          # links: the linking containers' /etc/hosts

    def _attach_one(self, row, eps, nid: str, active: Active | None = None) -> None:
        active = active or self._active[row.id]
        net = nq.get_network(self.events, nid)
        ep = next(e for e in eps if e.network == nid) if any(e.network == nid for e in eps) else \
            next(e for e in nq.endpoints_of_container(self.events, row.id) if e.network == nid)
        if net is None or not net.bridge:
            return
        self._ensure_bridge(net)
        index = len(active.ifaces)
        host_if = self._host_if(row.id, nid)
        self.netlink.add_endpoint(active.ns_path, net.bridge, host_if, ep.ip,
                                  ipaddress.ip_network(net.subnet).prefixlen,
                                  net.gateway if index == 0 else None, ep.mac, f"eth{index}",
                                  extra=[(a, 16) for a in ep.config.get("link_local_ips") or []])
        active.ifaces[nid] = host_if
        if not active.ip:
            active.ip, active.network = ep.ip, nid
        self._save_active(row.id, active)

    def _ensure_bridge(self, net) -> None:
        if net.bridge in self._bridges:
            return
        prefix = ipaddress.ip_network(net.subnet).prefixlen
        self.netlink.ensure_bridge(net.bridge, net.gateway, prefix)
        self._bridges.add(net.bridge)
        if self.use_iptables:
            from app.runtime.host.netlink import enable_ip_forward
            enable_ip_forward()
            self._write_rules()

    def _save_active(self, cid: str, active: Active) -> None:
        path = os.path.join(self.containers.bundle(cid), "network.json")
        with open(path + ".tmp", "w") as fh:
            json.dump({"ifaces": active.ifaces, "ip": active.ip, "network": active.network,
                       "bindings": [[b.port, b.proto, b.host_ip, b.host_port] for b in active.bindings]}, fh)
        os.replace(path + ".tmp", path)

    def detach(self, cid: str) -> None:
        """Exit hook (and a failed start's undo): rules and reservations go; the veth went with the
        namespace."""
        if cid not in self._active:
            return
        with self._lock:
            self._detach_locked(cid)
        for ep in nq.endpoints_of_container(self.events, cid):
            self._refresh_hosts(ep.network)

    def _has_links(self, cid: str) -> bool:
        """--icc=false: its link rules (as linking or linked container) are rewritten when it goes."""
        return True

    def _detach_locked(self, cid: str) -> None:
        active = self._active.pop(cid, None)
        if active is None:
            return
        if active.reservation:
            active.reservation.close()
        # The veths are not deleted here: they go with the namespace when its last process exits (a
        # failed start's undo kills its runc init); deleting them by hand cost 2-15 ms per container.
        try:
            os.unlink(os.path.join(self.containers.bundle(cid), "network.json"))
        except OSError:
            pass
        if self.use_iptables and (active.bindings or (not self.icc and self._has_links(cid))):
            try:
                self._write_rules()
            except Exception:  # noqa: BLE001 - logged; the next change rewrites the chains
                log.exception("rewriting the network rules")
        if active.bindings and active.ip:
            self._flush_conntrack(to_ips=[active.ip])

    def _flush_conntrack(self, **what) -> None:
        """Conntrack entries of published ports whose rules went (a stale UDP entry would keep sending
        to the old address): see Netlink.flush_conntrack. Never fails the operation."""
        if not self.use_iptables or not hasattr(self.netlink, "flush_conntrack"):
            return
        try:
            self.netlink.flush_conntrack(**what)
        except Exception:  # noqa: BLE001 - no nf_conntrack netlink: nothing to flush
            log.debug("flushing conntrack entries", exc_info=True)

    # ------------------------------------------------------------------------------ iptables

    def _networks_up(self):
        return [n for n in nq.list_networks(self.events) if n.bridge and n.bridge in self._bridges]

    def _write_rules(self) -> None:
        if not self.use_iptables:
            return
        nets = self._networks_up()
        fwd, post, dnat = [], [], []
        for n in nets:
            fwd.append(f"-o {n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
            fwd.append(f"-o {n.bridge} -m conntrack --ctstate DNAT -j ACCEPT")
        for n in nets:
            icc = n.options.get("com.docker.network.bridge.enable_icc", "true") != "false"
            if n.config.get("predefined") and not self.icc:
                icc = False
                fwd += self._link_accepts(n)
            fwd.append(f"-i {n.bridge} -o {n.bridge} -j {'ACCEPT' if icc else 'DROP'}")
        for a in nets:
            for b in nets:
                if a.bridge != b.bridge:
                    fwd.append(f"-i {a.bridge} -o {b.bridge} -j DROP")
        for n in nets:
            if n.config.get("internal"):
                fwd.append(f"-i {n.bridge} ! -o {n.bridge} -j DROP")
                fwd.append(f"-o {n.bridge} ! -i {n.bridge} -j DROP")
            else:
                fwd.append(f"-i {n.bridge} ! -o {n.bridge} -j ACCEPT")
            if not n.config.get("internal"):
                post.append(f"-s {n.subnet} ! -o {n.bridge} -j MASQUERADE")
            post.append(f"-s 127.0.0.0/8 -o {n.bridge} -j MASQUERADE")
            post.append(f"-s {n.subnet} -d {n.subnet} -o {n.bridge} -m conntrack --ctstate DNAT -j MASQUERADE")
        for cid, active in sorted(self._active.items()):
            dnat += portmod.dnat_rules(active.bindings, active.ip)
        self.iptables.write_chains("filter", {self.chain_fwd: fwd})
        self.iptables.write_chains("nat", {self.chain_dnat: dnat, self.chain_post: post})
        if not self._jumps:
            self.iptables.ensure_jump("filter", "FORWARD", f"-j {self.chain_fwd}")
            self.iptables.ensure_jump("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL -j {self.chain_dnat}")
            self.iptables.ensure_jump("nat", "OUTPUT", f"-m addrtype --dst-type LOCAL -j {self.chain_dnat}")
            self.iptables.ensure_jump("nat", "POSTROUTING", f"-j {self.chain_post}")
            self._jumps = True

    def _link_accepts(self, net) -> list[str]:
        """--icc=false: a linking container may reach its linked containers' exposed ports."""
        rules = []
        for cid, active in sorted(self._active.items()):
            row = self.containers.get(cid)
            if row is None or active.network != net.id:
                continue
            for entry in row.host_config.get("Links") or []:
                name, _ = linkmod.parse_link(entry)
                try:
                    child = self.containers.resolve(name)
                except NotFound:
                    continue
                child_active = self._active.get(child.id)
                if child_active is None or not child_active.ip:
                    continue
                for port, proto in portmod.exposed_ports(self._image_config(child), child.config):
                    rules.append(f"-i {net.bridge} -o {net.bridge} -s {active.ip}/32 -d {child_active.ip}/32 "
                                 f"-p {proto} -m {proto} --dport {port} -j ACCEPT")
                    rules.append(f"-i {net.bridge} -o {net.bridge} -s {child_active.ip}/32 -d {active.ip}/32 "
                                 f"-p {proto} -m {proto} --sport {port} -j ACCEPT")
        return rules

    def _remove_chains(self) -> None:
        if self.iptables is None:
            return
        existing = {"filter": set(self.iptables.chains("filter")), "nat": set(self.iptables.chains("nat"))}
        if self.chain_fwd not in existing["filter"] and not {self.chain_dnat, self.chain_post} & existing["nat"]:
            self._jumps = False
            return
        for table, builtin, rule in (("filter", "FORWARD", f"-j {self.chain_fwd}"),
                                     ("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL -j {self.chain_dnat}"),
                                     ("nat", "OUTPUT", f"-m addrtype --dst-type LOCAL -j {self.chain_dnat}"),
                                     ("nat", "POSTROUTING", f"-j {self.chain_post}")):
            try:
                self.iptables.remove_jump(table, builtin, rule)
            except Exception:  # noqa: BLE001
                log.exception("removing the jump to berth's chain")
        for table, chain in (("filter", self.chain_fwd), ("nat", self.chain_dnat), ("nat", self.chain_post)):
            if chain in existing[table]:
                self.iptables.delete_chain(table, chain)
        self._jumps = False

    # ------------------------------------------------------------------------------ views

    def settings(self, row) -> dict:
        """inspect's NetworkSettings."""
        running = row.state in ("running", "paused")
        active = self._active.get(row.id) if running else None
        image_cfg = self._image_config(row)
        exposed = portmod.exposed_ports(image_cfg, row.config)
        ports = portmod.ports_map(active.bindings if active else [], exposed) if running else {}
        networks = {}
        top = {"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "", "EndpointID": ""}
        mode = network_mode_of(row.host_config)
        eps = nq.endpoints_of_container(self.events, row.id)
        for ep in eps:
            net = nq.get_network(self.events, ep.network)
            if net is None:
                continue
            show = running and (active is not None and ep.network in active.ifaces or not self.enabled)
            ipam_cfg = {**({"IPv4Address": ep.ip} if ep.config.get("static_ip") else {}),
                        **({"LinkLocalIPs": ep.config["link_local_ips"]} if ep.config.get("link_local_ips") else {})}
            entry = {"IPAMConfig": ipam_cfg or None,
                     "Links": ep.config.get("links") or None, "Aliases": ep.aliases or None,
                     "MacAddress": ep.mac if show or ep.config.get("static_mac") else "",
                     "DriverOpts": ep.config.get("driver_opts") or None,
                     "NetworkID": net.id,
                     "EndpointID": ep.config.get("endpoint_id", "") if show else "",
                     "Gateway": ep.config.get("gateway", "") if show else "",
                     "IPAddress": ep.ip if show else "", "IPPrefixLen": ep.config.get("prefixlen", 0) if show else 0,
                     "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                     "DNSNames": ([row.name] + ep.aliases + [row.id[:12]]) if not net.config.get("predefined")
                     else None}
            networks[net.name] = entry
            if net.name == "bridge":
                top = {k: entry[k] for k in top}
        if mode in ("host", "none"):
            net = nq.network_by_name(self.events, mode)
            if net is not None:
                networks[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                                  "DriverOpts": None, "NetworkID": net.id, "EndpointID": "", "Gateway": "",
                                  "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                                  "GlobalIPv6PrefixLen": 0, "DNSNames": None}
        return {"Bridge": "", "SandboxID": "", "SandboxKey": active.ns_path if active else "",
                "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                "Ports": ports, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "", **top,
                "Networks": networks}

    def list_views(self) -> dict[str, tuple[str, str]]:
        """`ps`: each container's Ports and NetworkSettings.Networks as JSON text (running containers'
        published and exposed ports; every container's networks)."""
        by_container: dict[str, dict] = {}
        names = {n.id: n for n in nq.list_networks(self.events)}
        for ep in nq.all_endpoints(self.events):
            net = names.get(ep.network)
            if net is None:
                continue
            active = self._active.get(ep.container)
            show = active is not None and ep.network in active.ifaces
            by_container.setdefault(ep.container, {})[net.name] = {
                "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": ep.mac if show else "",
                "DriverOpts": None, "NetworkID": net.id,
                "EndpointID": ep.config.get("endpoint_id", "") if show else "",
                "Gateway": ep.config.get("gateway", "") if show else "", "IPAddress": ep.ip if show else "",
                "IPPrefixLen": ep.config.get("prefixlen", 0) if show else 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
        out = {}
        for cid in set(by_container) | set(self._active):
            ports = []
            if cid in self._active:
                row = self.containers.get(cid)
                if row is not None:
                    exposed = portmod.exposed_ports(self._image_config(row), row.config)
                    ports = self.summary_ports(cid, True, exposed)
            out[cid] = (json.dumps(ports, separators=(",", ":")),
                        json.dumps(by_container.get(cid, {}), separators=(",", ":")))
        return out

    def filter_facts(self) -> dict[str, tuple[set, set, set]]:
        """ps filters: each container's network names and IDs, published host ports and exposed ports."""
        names = {n.id: n for n in nq.list_networks(self.events)}
        out: dict[str, tuple[set, set, set]] = {}
        for ep in nq.all_endpoints(self.events):
            net = names.get(ep.network)
            if net is not None:
                out.setdefault(ep.container, (set(), set(), set()))[0].update({net.name, net.id})
        for cid, active in self._active.items():
            facts = out.setdefault(cid, (set(), set(), set()))
            facts[1].update((b.host_port, b.proto) for b in active.bindings)
            row = self.containers.get(cid)
            if row is not None:
                facts[2].update(portmod.exposed_ports(self._image_config(row), row.config))
            facts[2].update((b.port, b.proto) for b in active.bindings)
        for cid in cq.container_ids(self.events):
            mode = network_mode_of(self.containers.get(cid).host_config) if cid not in out else ""
            if mode in ("host", "none"):
                out.setdefault(cid, (set(), set(), set()))[0].add(mode)
        return out

    def summary_ports(self, cid: str, running: bool, exposed) -> list[dict]:
        """ps's Ports: published ports with their host side, exposed ones without."""
        active = self._active.get(cid) if running else None
        out = []
        bound = set()
        for b in (active.bindings if active else []):
            out.append({"IP": b.host_ip or "0.0.0.0", "PrivatePort": b.port, "PublicPort": b.host_port,
                        "Type": b.proto})
            bound.add((b.port, b.proto))
        for port, proto in exposed:
            if (port, proto) not in bound:
                out.append({"PrivatePort": port, "Type": proto})
        return out

    def summary_networks(self, cid: str, running: bool) -> dict:
        out = {}
        active = self._active.get(cid) if running else None
        for ep in nq.endpoints_of_container(self.events, cid):
            net = nq.get_network(self.events, ep.network)
            if net is None:
                continue
            show = active is not None and ep.network in active.ifaces
            out[net.name] = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": net.id,
                             "EndpointID": ep.config.get("endpoint_id", "") if show else "",
                             "Gateway": ep.config.get("gateway", "") if show else "",
                             "IPAddress": ep.ip if show else "",
                             "IPPrefixLen": ep.config.get("prefixlen", 0) if show else 0,
                             "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                             "MacAddress": ep.mac if show else "", "DriverOpts": None}
        return out

    def inspect(self, net, verbose: bool = False) -> dict:
        containers = {}
        for ep in nq.endpoints_of_network(self.events, net.id):
            row = self.containers.get(ep.container)
            if row is None or row.state not in ("running", "paused"):
                continue
            containers[ep.container] = {"Name": row.name, "EndpointID": ep.config.get("endpoint_id", ""),
                                        "MacAddress": ep.mac,
                                        "IPv4Address": f"{ep.ip}/{ep.config.get('prefixlen', 0)}" if ep.ip else "",
                                        "IPv6Address": ""}
        from app.api.containers import _rfc3339
        ipam_cfg = net.config.get("ipam_config") or ([{"Subnet": net.subnet, "Gateway": net.gateway}]
                                                     if net.subnet else [])
        return {"Name": net.name, "Id": net.id, "Created": _rfc3339(net.created_nano), "Scope": "local",
                "Driver": net.driver, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": net.config.get("ipam_options") or None,
                         "Config": ipam_cfg},
                "Internal": bool(net.config.get("internal")), "Attachable": bool(net.config.get("attachable")),
                "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                "Containers": containers, "Options": net.options, "Labels": net.labels}
