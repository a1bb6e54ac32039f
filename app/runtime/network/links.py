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
