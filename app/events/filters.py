"""Which events an /events subscriber receives: moby's daemon/events/filter.go semantics.

Different keys must all match; values of one key are alternatives, except `label`, where every given
label must be present. `container`, `volume`, `network` and `daemon` match the actor's ID or name by
prefix; `image` matches the ID or the image name with or without its tag.
"""
from __future__ import annotations

from app.common.filters import labels_match
from app.events.model import Event

EVENT_FILTER_KEYS = frozenset({
    "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "type",
    "volume", "config", "secret", "service",
})
# Actions that carry a suffix ("exec_start: sh -c …", "health_status: healthy") match by prefix.
_PREFIX_ACTIONS = {"health_status", "exec_create", "exec_start"}


def _fuzzy(values: set[str] | None, *sources: str) -> bool:
    if not values:
        return True
    return any(src and (src == v or src.startswith(v)) for v in values for src in sources)


def _exact(values: set[str] | None, *sources: str) -> bool:
    if not values:
        return True
    return any(src in values for src in sources)


def strip_tag(ref: str) -> str:
    """`busybox:latest` → `busybox`, `docker.io/library/busybox` → `busybox`, digests dropped."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


class EventFilter:
    def __init__(self, filters: dict[str, set[str]]):
        self.f = filters

    @property
    def sql_types(self) -> list[str] | None:
        """Types to narrow the SQL query with (an indexed column)."""
        return sorted(self.f["type"]) if "type" in self.f else None

    @property
    def sql_actions(self) -> list[str] | None:
        values = self.f.get("event")
        if not values or values & _PREFIX_ACTIONS:
            return None
        return sorted(values)

    def matches(self, ev: Event) -> bool:
        f = self.f
        attrs = ev.attributes
        name = attrs.get("name", "")
        if "event" in f:
            if f["event"] & _PREFIX_ACTIONS:
                if not _fuzzy(f["event"], ev.action):
                    return False
            elif ev.action not in f["event"]:
                return False
        if not _exact(f.get("type"), ev.type):
            return False
        if not _exact(f.get("scope"), ev.scope):
            return False
        for key in ("daemon", "container", "volume", "network", "plugin", "node", "service", "secret", "config"):
            if key in f:
                if ev.type != key or not _fuzzy(f[key], ev.actor_id, name):
                    return False
        if "image" in f:
            image_name = attrs.get("name" if ev.type == "image" else "image", "")
            if not _exact(f["image"], ev.actor_id, image_name, strip_tag(ev.actor_id), strip_tag(image_name)):
                return False
        return labels_match(f.get("label", ()), attrs)
