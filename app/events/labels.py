"""Container labels for /events: stored once, in the container's create event, and added to each of its
events when the event is sent or filtered — Docker's event attributes carry the labels, but copying them
into every stored event made one 50 MB label cost 50 MB per start, stop and die.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from app.events.model import Event


class ContainerLabels:
    """Labels of a container by ID, read from version 1 of its stream (the create event), cached."""

    def __init__(self, store, size: int = 1024):
        self.store = store
        self.size = size
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, cid: str) -> dict:
        with self._lock:
            if cid in self._cache:
                self._cache.move_to_end(cid)
                return self._cache[cid]
        first = self.store.stream_event_at(f"container:{cid}", 1)
        labels = {}
        if first is not None and first.action == "create" and first.payload:
            labels = first.payload.get("labels") or {}
        labels = {str(k): str(v) for k, v in labels.items()}
        with self._lock:
            self._cache[cid] = labels
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return labels

    def attach(self, ev: Event) -> Event:
        """The event with its container's labels under its own attributes (which win, as in moby)."""
        if ev.type != "container":
            return ev
        labels = self.of(ev.actor_id)
        if not labels:
            return ev
        return replace(ev, attributes={**labels, **ev.attributes})
