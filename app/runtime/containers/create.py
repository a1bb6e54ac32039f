"""create and rename: validation of a create request, name allocation, the create event."""
from __future__ import annotations

import os
import random
import re
import secrets

from app.common.reference import ReferenceError, normalize_name
from app.errors import ConcurrentChange, Conflict, InvalidParameter, NotFound
from app.events.model import NewEvent
from app.runtime import faults
from app.projections.containers import name_owner
from app.projections.images import get_image
from app.runtime.containers.createkeys import HOST_CONFIG, refuse_unapplied
from app.runtime.restart import policy as restart_policy
from app.runtime.containers.security import pid_mode, validate_host_config
from app.runtime.containers.spec import (clamped_rlimits, command_of, extra_hosts, resources_from,
                                         validate_console_size, validate_dns, validate_process_settings)
from app.runtime.host.runc import parse_signal

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# Generated names: adjective_surname, moby's shape. The space (48 x 80) is large enough that 300
# containers at once rarely draw the same name; a crowded space falls back to a random suffix.
_ADJECTIVES = """able agile amused bold brave bright busy calm candid clever cosmic crisp curious daring
eager earnest fair fond frank gentle glad happy honest jolly keen kind lively loyal lucid merry mellow
modest nimble noble patient plucky proud quiet quick sharp sincere steady tender trusty vivid warm witty
zen""".split()
_NAMES = """agnesi al_khwarizmi allen archimedes babbage backus banach bardeen bell bernoulli bohr boole
borg cantor cerf chandrasekhar church codd conway curie darwin descartes dijkstra einstein engelbart
euclid euler faraday fermat feynman franklin galileo gauss goldberg goodall hamilton hawking hertz
hilbert hodgkin hopper hypatia jackson johnson kepler knuth lamarr lamport laplace leibniz liskov
lovelace maxwell mcclintock meitner mendel minsky napier newton noether pascal pasteur perlman planck
poincare ramanujan ritchie riemann sammet shannon sinoussi stallman tesla thompson torvalds turing
volhard wilson wing wozniak yalow yonath""".split()
LOG_DRIVERS = ("json-file", "local", "none")


def _validate_config(config: dict) -> None:
    """moby's validateContainerConfig: checked at create, before the image is looked up."""
    workdir = config.get("WorkingDir") or ""
    if workdir:
        if not workdir.startswith("/"):
            raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        config["WorkingDir"] = os.path.normpath(workdir).replace("//", "/", 1)
    if config.get("StopSignal"):
        parse_signal(config["StopSignal"])
    for entry in config.get("Env") or []:
        if not isinstance(entry, str) or not entry.partition("=")[0]:
            raise InvalidParameter(f"invalid environment variable: {entry}")


class _NameTaken(Conflict):
    def __init__(self, name: str, owner: str):
        super().__init__(f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
                         "You have to remove (or rename) that container to be able to reuse that name.")


def _name_free(conn, name: str) -> None:
    """The name guard, run inside the append transaction."""
    owner = name_owner(conn, name)
    if owner is not None:
        raise _NameTaken(name, owner)


class CreateMixin:
    """Containers.create and .rename (mixed into the service)."""

    def _requested_name(self, requested: str) -> str:
        if not NAME_RE.match(requested):
            raise InvalidParameter(f"Invalid container name ({requested}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                   "allowed")
        return requested.lstrip("/")

    def _generated_name(self) -> str:
        """moby's namesgenerator shape; a random suffix once the small space looks crowded."""
        for _ in range(100):
            name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
            if name_owner(self.events, name) is None:
                return name
        return f"{random.choice(_ADJECTIVES)}_{secrets.token_hex(4)}"

    def create(self, request: dict, name: str | None) -> str:
        """`request` is a decoded create body (app/api/schemas/container_create.py): Config's keys at the
        top, HostConfig and NetworkingConfig nested, every value of its Go type."""
        host_config = dict(request.get("HostConfig") or {})
        networking_config = dict(request.get("NetworkingConfig") or {})
        config = {k: v for k, v in request.items() if k not in ("HostConfig", "NetworkingConfig")}
        if any(k not in HOST_CONFIG for k in host_config):
            raise InvalidParameter("invalid HostConfig: " + ", ".join(sorted(set(host_config) - set(HOST_CONFIG))))
        refuse_unapplied(config, host_config, networking_config)    # never accepted and then ignored
        restart_policy.validate(host_config.get("RestartPolicy"))   # moby's wording (app/runtime/restart/policy.py)
        restart_policy.check_auto_remove(host_config)
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("Config cannot be empty in order to create a container")
        _validate_config(config)
        try:
            row, _ = self.images.resolve(image_ref)
        except NotFound:
            try:                                    # Docker names the normalized reference
                shown = normalize_name(image_ref)
            except ReferenceError:
                shown = image_ref
            raise NotFound(f"No such image: {shown}") from None
        image_cfg = (row.config.get("config") or {})
        resources_from(host_config)                 # limits are checked now, not at start
        clamped_rlimits(host_config.get("Ulimits"))
        validate_console_size(host_config)
        validate_process_settings(host_config)
        validate_dns(host_config)
        extra_hosts(host_config)
        validate_host_config(host_config)           # capabilities, --security-opt, PidMode, --device
        if host_config.get("UTSMode") == "host" and config.get("Hostname"):
            raise InvalidParameter("conflicting options: hostname and the UTS mode")
        if host_config.get("UTSMode") == "host" and config.get("Domainname"):     # it could not be applied
            raise InvalidParameter("conflicting options: domainname and the UTS mode")
        if not host_config.get("CgroupnsMode"):     # moby's default for this host, shown by inspect
            host_config["CgroupnsMode"] = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
        kind, target = pid_mode(host_config)
        if kind == "container":                     # kept by ID, as moby does: a rename does not break it
            try:
                host_config["PidMode"] = "container:" + self.resolve(target).id
            except NotFound:
                pass                                # moby leaves it to start to fail
        log_config = host_config.get("LogConfig") or {}
        driver = log_config.get("Type") or "json-file"
        if driver not in LOG_DRIVERS:
            raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
        host_config["LogConfig"] = {"Type": driver, "Config": log_config.get("Config") or {}}
        command = command_of(image_cfg, config)
        cname = self._requested_name(name) if name else None
        if cname and (owner := name_owner(self.events, cname)):
            raise _NameTaken(cname, owner)          # early, before any work; the guard decides for real
        cid = secrets.token_hex(32)
        # volumes: mount points resolved now (app/runtime/volumes), volumes created in the same append
        points, volume_events, volume_guard = self.volumes.plan(
            cid, lambda: chosen, image_ref, config, host_config, image_cfg, self.resolve)
        # networks (app/runtime/network): its checks, and connect events allocating the addresses
        net_events, net_guard = self.network.plan_create(cid, config, host_config, networking_config, cname or "")
        image_labels = {k: v for k, v in (image_cfg.get("Labels") or {}).items()
                        if isinstance(k, str) and isinstance(v, str)}    # an image config is untrusted
        labels = {**image_labels, **(config.pop("Labels", None) or {})}
        image_id = row.id

        def create_event(chosen: str) -> list[NewEvent]:
            # Labels are stored once, in this payload; /events adds them to every event of the container
            # when it sends it (app/events/labels.py), as Docker's events carry them.
            return volume_events() + [NewEvent(
                "container", "create", cid, {"image": image_ref, "name": chosen}, expected_version=0,
                payload={"config": config, "host_config": host_config, "image_id": image_id,
                         "labels": labels, "command": command, "mounts": points})] + net_events

        def guard(conn, chosen: str) -> None:
            _name_free(conn, chosen)
            if get_image(conn, image_id) is None:   # deleted since it was resolved: nothing may refer to it
                raise NotFound(f"No such image: {image_ref}")
            volume_guard(conn)
            net_guard(conn)

        chosen = cname or self._generated_name()
        faults.point("create:before-append")
        for attempt in range(6):
            try:
                self.events.append(create_event(chosen), guard=lambda conn: guard(conn, chosen))
                self.volumes.created(points)
                return cid
            except _NameTaken:
                if cname:
                    raise
                # A generated name taken meanwhile by a concurrent create: draw again, and once the
                # space looks contended, with a random suffix that cannot realistically collide.
                chosen = self._generated_name() if attempt < 2 else \
                    f"{random.choice(_ADJECTIVES)}_{secrets.token_hex(6)}"
        raise Conflict("could not find a free container name")

    def rename(self, ref: str, new_name: str) -> None:
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        row = self.resolve(ref)
        if new_name.lstrip("/") == row.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        name = self._requested_name(new_name)
        for attempt in range(2):
            attrs = {**self._attrs(row), "name": name, "oldName": "/" + row.name}
            try:
                self.events.append([NewEvent("container", "rename", row.id, attrs, expected_version=row.version)],
                                   guard=lambda conn: _name_free(conn, name))
                return
            except _NameTaken as err:
                raise Conflict(f"Error when allocating new name: {err}") from None
            except ConcurrentChange:
                fresh = self.get(row.id)            # changed meanwhile (renamed, started …): decide again
                if attempt or fresh is None:
                    raise NotFound(f"No such container: {ref}") if fresh is None else Conflict(
                        f"container {row.id} changed while it was being renamed; try again") from None
                row = fresh
