"""Docker's detach keys: the `detachKeys` syntax and a matcher that works across reads.

Shared by the daemon (which ends an attach on a match) and our CLI (which, like the docker CLI,
recognises the sequence it sent so that it knows it detached rather than saw the container exit).
"""
from __future__ import annotations

from app.errors import InvalidParameter

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's detach-key syntax: comma-separated `ctrl-<a-z@[\\]^_>` or single characters."""
    spec = spec or DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        low = key.lower()
        if low.startswith("ctrl-") and len(key) == 6:
            ch = low[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            if ch in _CTRL_SPECIALS:
                out.append(_CTRL_SPECIALS[ch])
                continue
        elif len(key) == 1 and ord(key) < 256:
            out.append(ord(key))
            continue
        raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in a stdin stream split across reads; held-back bytes of a partial
    match are released when the match fails, so nothing the user typed is lost."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns (bytes to forward, detached). On a mismatch the held bytes are released one at a
        time until what is left is again a start of the sequence (so `a,a,b` matches in `aaab`)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            while candidate and not self.keys.startswith(candidate):
                out.append(candidate[0])         # not part of a match: the user's input after all
                candidate = candidate[1:]
            self.held = candidate
            if self.held and self.held == self.keys:
                self.held = b""
                return bytes(out), True
        return bytes(out), False
