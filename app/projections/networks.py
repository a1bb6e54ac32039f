"""The networks read model: networks and their endpoints (one per container and network, holding the
container's address on it), moved only by network events.

`create` carries the network's whole configuration in its payload; `connect` the endpoint
(container, IPv4 address, MAC, aliases, links, the settings asked for); `disconnect` frees it;
`destroy` drops the network. An address is allocated inside the append's transaction (the connect's
guard, app/runtime/network/service.py), so it is never handed out twice, and it stays the
container's until it is disconnected (rm disconnects from every network).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from app.events.model import Event
from app.projections.reads import query as _query


class NetworksProjector:
    name = "networks"
    version = 1
    tables = ("networks", "endpoints")
    schema = (
        """CREATE TABLE IF NOT EXISTS networks (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            driver TEXT NOT NULL,
            created_nano INTEGER NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',
            last_ip TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE IF NOT EXISTS endpoints (
            network TEXT NOT NULL,
            container TEXT NOT NULL,
            ip TEXT NOT NULL DEFAULT '',
            mac TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL DEFAULT '{}',
            seq INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (network, container)
        )""",
        "CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ip ON endpoints (network, ip) WHERE ip != ''",
        "CREATE INDEX IF NOT EXISTS endpoints_container ON endpoints (container)",
    )

    def apply(self, conn, ev: Event) -> None:
        if ev.type != "network":
            return
        p = ev.payload or {}
        if ev.action in ("create", "define"):
            conn.execute("INSERT INTO networks (id, name, driver, created_nano, config) VALUES (?, ?, ?, ?, ?)",
                         (ev.actor_id, p.get("name") or ev.attributes.get("name", ev.actor_id), p.get("driver", "bridge"), ev.time_nano,
                          json.dumps(p, sort_keys=True)))
        elif ev.action == "connect":
            conn.execute("INSERT INTO endpoints (network, container, ip, mac, config, seq) VALUES (?, ?, ?, ?, ?, ?)",
                         (ev.actor_id, ev.attributes["container"], p.get("ip", ""), p.get("mac", ""),
                          json.dumps(p, sort_keys=True), ev.seq))
            if p.get("ip"):
                conn.execute("UPDATE networks SET last_ip=? WHERE id=?", (p["ip"], ev.actor_id))
        elif ev.action == "disconnect":
            conn.execute("DELETE FROM endpoints WHERE network=? AND container=?",
                         (ev.actor_id, ev.attributes["container"]))
        elif ev.action in ("destroy", "undefine"):
            conn.execute("DELETE FROM endpoints WHERE network=?", (ev.actor_id,))
            conn.execute("DELETE FROM networks WHERE id=?", (ev.actor_id,))


@dataclass
class Network:
    id: str
    name: str
    driver: str
    created_nano: int
    config: dict
    last_ip: str

    @property
    def subnet(self) -> str:
        return self.config.get("subnet", "")

    @property
    def gateway(self) -> str:
        return self.config.get("gateway", "")

    @property
    def bridge(self) -> str:
        return self.config.get("bridge", "")

    @property
    def labels(self) -> dict:
        return self.config.get("labels") or {}

    @property
    def options(self) -> dict:
        return self.config.get("options") or {}


@dataclass
class Endpoint:
    network: str
    container: str
    ip: str
    mac: str
    config: dict = field(default_factory=dict)
    seq: int = 0

    @property
    def aliases(self) -> list[str]:
        return self.config.get("aliases") or []


def _network(row) -> Network:
    return Network(row["id"], row["name"], row["driver"], row["created_nano"], json.loads(row["config"]),
                   row["last_ip"])


def _endpoint(row) -> Endpoint:
    return Endpoint(row["network"], row["container"], row["ip"], row["mac"], json.loads(row["config"]), row["seq"])


def list_networks(db) -> list[Network]:
    return [_network(r) for r in _query(db, "SELECT * FROM networks ORDER BY created_nano, id")]


def get_network(db, nid: str) -> Network | None:
    rows = _query(db, "SELECT * FROM networks WHERE id=?", (nid,))
    return _network(rows[0]) if rows else None


def find_networks(db, ref: str) -> list[Network]:
    """Docker's lookup order: full ID, exact name, then an ID prefix."""
    rows = _query(db, "SELECT * FROM networks WHERE id=?", (ref,)) or \
        _query(db, "SELECT * FROM networks WHERE name=?", (ref,))
    if not rows and ref:
        rows = _query(db, "SELECT * FROM networks WHERE id LIKE ? ESCAPE '\\'",
                      (ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
    return [_network(r) for r in rows]


def network_by_name(db, name: str) -> Network | None:
    rows = _query(db, "SELECT * FROM networks WHERE name=?", (name,))
    return _network(rows[0]) if rows else None


def endpoints_of_network(db, nid: str) -> list[Endpoint]:
    return [_endpoint(r) for r in _query(db, "SELECT * FROM endpoints WHERE network=? ORDER BY seq", (nid,))]


def endpoints_of_container(db, cid: str) -> list[Endpoint]:
    return [_endpoint(r) for r in _query(db, "SELECT * FROM endpoints WHERE container=? ORDER BY seq", (cid,))]


def all_endpoints(db) -> list[Endpoint]:
    return [_endpoint(r) for r in _query(db, "SELECT * FROM endpoints ORDER BY seq")]


def taken_ips(db, nid: str) -> set[str]:
    return {r["ip"] for r in _query(db, "SELECT ip FROM endpoints WHERE network=? AND ip != ''", (nid,))}


def network_subnets(db) -> list[tuple[str, str]]:
    """(network ID, subnet) of every network with one."""
    return [(n.id, n.subnet) for n in list_networks(db) if n.subnet]
