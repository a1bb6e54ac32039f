"""Event records and their Docker wire shape.

An event has two attribute sets: `attributes` are Docker's `Actor.Attributes` (shown by /events exactly);
`payload` holds berth's own facts (a full create request, an allocated address …) that projections need
but Docker clients never see.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EVENT_TYPES = ("container", "image", "volume", "network", "daemon")

# Docker's vocabulary per type (moby api/types/events). Bookkeeping facts of berth's own use other
# action names and are not streamed by /events.
DOCKER_ACTIONS = {
    "container": {
        "attach", "commit", "copy", "create", "destroy", "detach", "die", "exec_create", "exec_detach",
        "exec_die", "exec_start", "export", "health_status", "kill", "oom", "pause", "rename", "resize",
        "restart", "start", "stop", "top", "unpause", "update", "archive-path", "extract-to-dir", "prune",
    },
    "image": {"delete", "import", "load", "pull", "push", "save", "tag", "untag", "prune"},
    "volume": {"create", "destroy", "mount", "unmount", "prune"},
    "network": {"create", "connect", "disconnect", "destroy", "remove", "prune"},
    "daemon": {"reload", "start", "shutdown"},
}


@dataclass
class NewEvent:
    """An event about to be appended. `stream` defaults to "<type>:<actor_id>"."""

    type: str
    action: str
    actor_id: str
    attributes: dict = field(default_factory=dict)
    payload: dict | None = None
    stream: str | None = None
    expected_version: int | None = None  # optimistic concurrency: the stream's version we decided on

    def __post_init__(self):
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.stream is None:
            self.stream = f"{self.type}:{self.actor_id}"
        # Docker's attributes are strings only.
        self.attributes = {str(k): str(v) for k, v in self.attributes.items()}


@dataclass
class Event:
    """An event as stored: `seq` orders the whole log, `version` orders its stream."""

    seq: int
    time_nano: int
    type: str
    action: str
    actor_id: str
    attributes: dict
    stream: str
    version: int
    payload: dict | None = None
    scope: str = "local"

    @property
    def is_docker_visible(self) -> bool:
        # `exec_create: CMD ARGS`, `exec_start: …` and `health_status: …` carry a suffix (moby)
        return self.action.split(":", 1)[0] in DOCKER_ACTIONS.get(self.type, ())

    def to_docker(self) -> dict:
        """The JSON object /events sends, key order and legacy fields as moby writes them."""
        out: dict = {}
        if self.type == "container":
            out["status"] = self.action
            out["id"] = self.actor_id
            out["from"] = self.attributes.get("image", "")
        elif self.type == "image":
            out["status"] = self.action
            out["id"] = self.actor_id
        out["Type"] = self.type
        out["Action"] = self.action
        out["Actor"] = {"ID": self.actor_id, "Attributes": dict(self.attributes)}
        out["scope"] = self.scope
        out["time"] = self.time_nano // 1_000_000_000
        out["timeNano"] = self.time_nano
        return out
