"""Image configs: the `--change` instructions of import (and later commit), and config JSON helpers."""
from __future__ import annotations

import json
import shlex

from app.errors import InvalidParameter

CHANGE_COMMANDS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "USER", "WORKDIR", "VOLUME", "LABEL", "ONBUILD",
                   "STOPSIGNAL")


def _json_or_shell(value: str, shell_form: bool) -> list[str]:
    """Dockerfile exec form (a JSON array) or shell form (wrapped in /bin/sh -c)."""
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
    return ["/bin/sh", "-c", text] if shell_form else text.split()


def _pairs(value: str, instruction: str) -> list[tuple[str, str]]:
    """`k=v k2="v 2"` (or the legacy single `k v` form) into pairs."""
    try:
        words = shlex.split(value)
    except ValueError as err:
        raise InvalidParameter(f"{instruction}: {err}") from err
    if words and "=" not in words[0]:
        key, _, rest = value.strip().partition(" ")
        if not rest.strip():
            raise InvalidParameter(f"{instruction} requires at least one argument" if not key
                                   else f"{instruction} names can not be blank" if not key
                                   else f"{instruction} must have two arguments")
        return [(key, rest.strip())]
    pairs = []
    for word in words:
        key, sep, val = word.partition("=")
        if not sep or not key:
            raise InvalidParameter(f"{instruction} names can not be blank" if not key
                                   else f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        pairs.append((key, val))
    if not pairs:
        raise InvalidParameter(f"{instruction} requires at least one argument")
    return pairs


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Apply Dockerfile-style `--change` lines to a container config dict (returns a new dict)."""
    out = json.loads(json.dumps(config))
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instruction, _, value = line.partition(" ")
        instruction = instruction.upper()
        value = value.strip()
        if instruction not in CHANGE_COMMANDS:
            raise InvalidParameter(f"{line.split(' ')[0]} is not a valid change command")
        if not value:
            raise InvalidParameter(f"{instruction} requires at least one argument")
        if instruction == "CMD":
            out["Cmd"] = _json_or_shell(value, shell_form=True)
        elif instruction == "ENTRYPOINT":
            out["Entrypoint"] = _json_or_shell(value, shell_form=True)
        elif instruction == "ENV":
            env = [e for e in out.get("Env") or []]
            for key, val in _pairs(value, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={val}"]
            out["Env"] = env
        elif instruction == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            for port in value.split():
                number, _, proto = port.partition("/")
                if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                    raise InvalidParameter(f"invalid containerPort: {port}")
                ports[f"{int(number)}/{proto or 'tcp'}"] = {}
            out["ExposedPorts"] = ports
        elif instruction == "USER":
            out["User"] = value
        elif instruction == "WORKDIR":
            out["WorkingDir"] = value
        elif instruction == "VOLUME":
            volumes = dict(out.get("Volumes") or {})
            for path in _json_or_shell(value, shell_form=False):
                volumes[path] = {}
            out["Volumes"] = volumes
        elif instruction == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_pairs(value, "LABEL"))
            out["Labels"] = labels
        elif instruction == "ONBUILD":
            out["OnBuild"] = (out.get("OnBuild") or []) + [value]
        elif instruction == "STOPSIGNAL":
            out["StopSignal"] = value
    return out


def empty_container_config() -> dict:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
            "Labels": None}


def canonical_json(obj) -> bytes:
    """The bytes an image config is stored (and hashed) as."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()
