"""Docker's `filters` query parameter: JSON in either form the clients send.

docker CLI: {"key": {"value": true}}; docker-py and old clients: {"key": ["value"]}. Both become
{key: set(values)}. Unknown keys are refused as moby does: "invalid filter 'key'".
"""
from __future__ import annotations

import json


class FilterError(ValueError):
    pass


def parse_filters(raw: str | None, allowed: set[str] | frozenset[str]) -> dict[str, set[str]]:
    if raw is None or raw.strip() == "":
        return {}
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise FilterError(f"invalid filter: {raw!r} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise FilterError(f"invalid filter: {raw!r} must be a JSON object")
    out: dict[str, set[str]] = {}
    for key, values in data.items():
        if key not in allowed:
            raise FilterError(f"invalid filter '{key}'")
        if isinstance(values, dict):
            if not all(isinstance(v, bool) for v in values.values()):
                raise FilterError(f"invalid filter '{key}': values must map to true")
            chosen = {str(v) for v, on in values.items() if on}
        elif isinstance(values, list):
            chosen = {str(v) for v in values}
        elif isinstance(values, str):
            chosen = {values}
        else:
            raise FilterError(f"invalid filter '{key}': {values!r} is neither a list nor an object")
        if chosen:
            out[key] = chosen
    return out


def to_query(filters: dict[str, list[str] | set[str]]) -> str:
    """The CLI's encoding (what the docker CLI sends)."""
    return json.dumps({k: {v: True for v in vs} for k, vs in filters.items()}, separators=(",", ":"))


def parse_filter_flags(items: list[str]) -> dict[str, list[str]]:
    """The CLI's repeated `--filter KEY=VALUE` flags, grouped by key."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FilterError(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key, []).append(value)
    return out


def labels_match(wanted, labels: dict) -> bool:
    """Every `key` or `key=value` in `wanted` holds for `labels` (Docker's label filter: all must match)."""
    for want in wanted:
        key, sep, value = want.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
