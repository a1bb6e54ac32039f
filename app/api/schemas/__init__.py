"""Request bodies and queries through marshmallow schemas, decoded the way moby's Go code does.

`load_json_body` is the one way a JSON body enters berth: bounded in size (--max-json-body, 413) and
in nesting (MAX_JSON_DEPTH, 400) before it is parsed, parsed with numbers that keep their literal
text, then decoded by a GoSchema (gotypes.py) so no value of the wrong type reaches a command, an
event or the runtime. Every failure is InvalidParameter with moby's `invalid JSON: …` text.
"""
from __future__ import annotations

import json
import re

from app.api.schemas.gotypes import GoSchema, GoTypeError, parse_json, plain
from app.errors import InvalidParameter, PayloadTooLarge

MAX_JSON_DEPTH = 100          # Docker's bodies nest 6 deep; Go's own decoder stops at 10,000
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


DRAIN = 256 << 10     # of a refused body, read and dropped so the client is not cut off mid-send (Go does too)


def read_body(environ, stream, limit: int) -> bytes:
    """The whole body, refusing one larger than `limit` without reading past limit + 1 bytes (and
    DRAIN more, dropped, so a client still sending sees the 413 rather than a reset)."""
    length = environ.get("CONTENT_LENGTH") or ""
    too_large = f"request body is larger than the daemon's limit of {limit} bytes (--max-json-body)"
    if length.isdigit() and limit and int(length) > limit:
        _drain(stream, min(int(length), DRAIN))
        raise PayloadTooLarge(too_large)
    data = stream.read(limit + 1) if limit else stream.read()
    if limit and len(data) > limit:
        _drain(stream, DRAIN)
        raise PayloadTooLarge(too_large)
    return data


def _drain(stream, most: int) -> None:
    try:
        while most > 0:
            chunk = stream.read(min(most, 64 << 10))
            if not chunk:
                return
            most -= len(chunk)
    except OSError:
        pass


def check_depth(data: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse nesting deeper than `limit` before the recursive parser sees it. Strings are skipped
    as tokens, so brackets inside them do not count; a body with few brackets is not scanned."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return
    depth = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise InvalidParameter(f"invalid JSON: nesting deeper than {limit} levels")
        elif token in (b"]", b"}"):
            depth -= 1


def _syntax_message(err: json.JSONDecodeError) -> str:
    """Go's wording for the common syntax errors (json.Decoder reads a stream: a cut body is EOF)."""
    if err.msg == "Extra data":
        return "unexpected content after JSON"
    if err.pos >= len(err.doc.rstrip()):
        return "invalid JSON: unexpected EOF"
    char = err.doc[err.pos]
    return f"invalid JSON: invalid character {char!r} looking for beginning of value"


def parse_body(data: bytes):
    """Bytes → JSON value with literal-keeping numbers; moby's texts for empty, bad and deep bodies."""
    if not data.strip():
        raise InvalidParameter("invalid JSON: got EOF while reading request body")
    check_depth(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")     # Go substitutes U+FFFD for bad UTF-8
    try:
        return parse_json(text)
    except json.JSONDecodeError as err:
        raise InvalidParameter(_syntax_message(err)) from None
    except RecursionError:                                # cannot happen below MAX_JSON_DEPTH; kept as a guard
        raise InvalidParameter(f"invalid JSON: nesting deeper than {MAX_JSON_DEPTH} levels") from None


def decode(schema: GoSchema, value) -> dict:
    """A parsed value through a GoSchema: plain Python values, or moby's type error."""
    try:
        return plain(schema.load(value))
    except GoTypeError as err:
        raise InvalidParameter("invalid JSON: " + err.message) from None


def load_json_body(request, schema: GoSchema, limit: int) -> dict:
    """The request's JSON body, bounded, parsed and decoded by `schema`."""
    return decode(schema, parse_body(read_body(request.environ, request.stream, limit)))
