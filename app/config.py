"""Daemon configuration: what `python cli.py daemon` flags and wsgi.py's environment set."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from app.common.defaults import DEFAULT_DATA_ROOT, DEFAULT_HOST


@dataclass
class Config:
    data_root: str = DEFAULT_DATA_ROOT
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    pidfile: str | None = None
    runtime: str = "runc"
    cgroup_parent: str = "berth"  # containers' cgroups go under /<parent>/<id>
    threads: int = 64          # bounded worker pool per listener
    max_streams: int = 1024    # concurrent long-lived requests (attach, wait, events, logs -f)
    max_connections: int = 2048  # open connections per listener, streams not counted
    head_timeout: float = 10.0   # seconds for a request head to arrive
    idle_timeout: float = 10.0   # seconds a kept-alive connection may stay silent
    debug: bool = False
    socket_group: str = "docker"  # -G: group of the unix:// sockets (dockerd's default; may be missing)
    tls: bool | None = None       # --tls / --tls=false (None: not given)
    tlsverify: bool | None = None  # --tlsverify[=bool] (None: not given)
    tlscacert: str | None = None  # None: ca.pem/cert.pem/key.pem in $DOCKER_CERT_PATH or ~/.docker
    tlscert: str | None = None
    tlskey: str | None = None
    seccomp_profile: str | None = None  # --seccomp-profile: None/"builtin", "unconfined", or a profile's JSON
    no_new_privileges: bool = False    # --no-new-privileges: the default of every container
    # Archive uploads (load, import): a bound on one archive's uncompressed bytes and written data, and
    # the free space the data root's file system keeps. 0 = no bound / no floor.
    max_upload_size: int = 64 << 30
    min_free_space: int = 1 << 30
    max_json_body: int = 16 << 20   # JSON request bodies (create …): larger ones are 413
    # Networking (app/runtime/network): the default bridge's interface name (also the tag of berth's
    # iptables chains), its gateway/prefix, the pools new networks' subnets come from, whether berth
    # writes iptables rules, and whether containers on the default bridge may talk to each other.
    bridge: str = "berth0"
    bip: str | None = None
    default_address_pools: list[str] = field(default_factory=list)
    iptables: bool = True
    icc: bool = True
    # Restart policies (app/runtime/restart): --shutdown-stop stops the containers at a clean shutdown
    # (default: they keep running, as dockerd's live-restore); restart_min_delay (--restart-min-delay,
    # for tests only) raises every policy delay to at least that many seconds.
    shutdown_stop: bool = False
    restart_min_delay: float = 0.0
    host_gateway_ip: str | None = None   # --host-gateway-ip: what --add-host NAME:host-gateway maps to

    @classmethod
    def from_env(cls) -> "Config":
        """For WSGI servers (wsgi.py): BERTH_DATA_ROOT selects the data root."""
        return cls(data_root=os.environ.get("BERTH_DATA_ROOT", DEFAULT_DATA_ROOT))
