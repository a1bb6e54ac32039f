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

    @classmethod
    def from_env(cls) -> "Config":
        """For WSGI servers (wsgi.py): BERTH_DATA_ROOT selects the data root."""
        return cls(data_root=os.environ.get("BERTH_DATA_ROOT", DEFAULT_DATA_ROOT))
