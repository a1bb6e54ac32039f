"""Upcasters: explicit functions that lift an old event's attributes/payload to the current schema.

History is never rewritten. Each stored row carries the schema number it was written with; when a
later release changes what an action records, it adds `UPCASTERS[(type, action, old)] = fn` where
`fn(attributes, payload) -> (attributes, payload)` produces schema `old + 1`.
"""
from __future__ import annotations

from typing import Callable

CURRENT_SCHEMA = 1

UPCASTERS: dict[tuple[str, str, int], Callable[[dict, dict | None], tuple[dict, dict | None]]] = {}


def upcast(type_: str, action: str, schema: int, attributes: dict, payload: dict | None):
    while schema < CURRENT_SCHEMA:
        fn = UPCASTERS.get((type_, action, schema))
        if fn is not None:
            attributes, payload = fn(attributes, payload)
        schema += 1
    return attributes, payload
