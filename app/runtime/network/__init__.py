"""Networking: networks and endpoints (service.py), addresses (ipam.py), published ports (ports.py),
links (links.py), /etc/hosts and resolv.conf (etcfiles.py)."""
from app.runtime.network.service import Networks  # noqa: F401
