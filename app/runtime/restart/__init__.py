"""Supervision: restart policies and health checks, run on the daemon's one scheduler."""
