"""Containers: the service (app/runtime/containers/service.py) and one module per verb or topic."""
from app.runtime.containers.service import Containers

__all__ = ["Containers"]
