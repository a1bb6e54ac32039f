"""Legacy links (`--link NAME[:ALIAS]`) on the default bridge: Docker's environment variables and
/etc/hosts entries (moby daemon/links)."""
from __future__ import annotations

import re

from app.errors import InvalidParameter

_ALIAS = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def parse_link(text: str) -> tuple[str, str]:
    """"name:alias", "name", or moby's stored "/name:/this/alias" → (name, alias)."""
    name, _, alias = str(text).partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name or not _ALIAS.match(name) or not _ALIAS.match(alias):
        raise InvalidParameter(f"invalid link specification: {text!r}: names are [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return name, alias


def link_env(alias: str, parent: str, child_name: str, ip: str, ports: list[tuple[int, str]],
             child_env: list[str]) -> list[str]:
    """moby's Link.ToEnv: ALIAS_NAME, ALIAS_PORT (lowest port), ALIAS_PORT_<p>_<proto>[_ADDR|_PORT|_PROTO],
    ALIAS_ENV_<var> from the linked container's own environment (not PATH/HOSTNAME/HOME)."""
    prefix = re.sub(r"[^A-Za-z0-9_]", "_", alias).upper()
    env = [f"{prefix}_NAME=/{parent}/{alias}"]
    ordered = sorted(ports, key=lambda p: (p[0], p[1]))
    if ordered:
        port, proto = ordered[0]
        env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
    for port, proto in ordered:
        base = f"{prefix}_PORT_{port}_{proto.upper()}"
        env += [f"{base}={proto}://{ip}:{port}", f"{base}_ADDR={ip}", f"{base}_PORT={port}", f"{base}_PROTO={proto}"]
    for item in child_env:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "HOSTNAME", "PATH"):
            env.append(f"{prefix}_ENV_{key}={value}")
    return env


def remove_link(nets, ref: str) -> None:
    """moby's rmLink: "/linker/alias" names a link of container linker; it goes from linker's HostConfig
    (a bookkeeping `unlink` event), and a running linker's /etc/hosts is rewritten without it (its
    environment stays: it was fixed at start, as in Docker)."""
    from app.errors import Conflict, NotFound
    from app.events.model import NewEvent
    name = ref if ref.startswith("/") else "/" + ref
    parent, _, alias = name.rpartition("/")
    if parent == "":
        raise Conflict("Conflict, cannot remove the default link name of the container")
    try:
        linker = nets.containers.resolve(parent.lstrip("/"))
    except NotFound:
        raise NotFound(f"No such container: {ref.lstrip('/')}") from None
    with nets.containers._locked(linker.id):
        linker = nets.containers.get(linker.id)
        kept, found = [], False
        for entry in linker.host_config.get("Links") or []:
            try:
                _, a = parse_link(entry)
            except InvalidParameter:
                a = None
            if a == alias and not found:
                found = True
            else:
                kept.append(entry)
        if not found:
            raise NotFound(f"No such container: {ref.lstrip('/')}")
        nets.events.append([NewEvent("container", "unlink", linker.id, {"name": linker.name},
                                     payload={"host_config": {"Links": kept}},
                                     expected_version=linker.version)])
        linker = nets.containers.get(linker.id)
        _rewrite_hosts(nets, linker)
    if not nets.icc and nets.use_iptables and nets.enabled:
        with nets._lock:
            nets._write_rules()


def _rewrite_hosts(nets, row) -> None:
    import os
    from app.runtime.network import etcfiles
    if row is None or row.state not in ("running", "paused"):
        return
    hostname = row.config.get("Hostname") or row.id[:12]
    try:
        etcfiles.write_in_place(os.path.join(nets.containers.bundle(row.id), "hosts"), nets._hosts_for(row, hostname))
    except (OSError, InvalidParameter):
        pass


def refresh_parents(nets, child) -> None:
    """A linked container started (maybe with a new address): every running container linking to it
    gets its /etc/hosts rewritten, as moby's updateParentHosts does; their environment stays."""
    from app.projections import containers as cq
    for cid in cq.container_ids(nets.events, states=cq.LIVE_STATES):
        if cid == child.id:
            continue
        row = nets.containers.get(cid)
        if row is None or not row.host_config.get("Links"):
            continue
        for entry in row.host_config.get("Links") or []:
            try:
                name, _ = parse_link(entry)
                target = nets.containers.resolve(name)
            except Exception:  # noqa: BLE001 - a link to a removed container
                continue
            if target.id == child.id:
                _rewrite_hosts(nets, row)
                break
