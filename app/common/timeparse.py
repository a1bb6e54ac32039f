"""Docker's time values for since/until: Unix seconds (with fraction), RFC 3339 / date forms, or a
Go duration relative to now ("10m", "1h30m", "1.5h").

`parse_timestamp` returns Unix nanoseconds. Bare dates and times without a zone are local time, as in
moby's api/types/time.GetTimestamp.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
_UNIX = re.compile(r"^(-?\d+)(?:\.(\d+))?$")
_DATE_FORMS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d")
_ISO_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$")


class TimeParseError(ValueError):
    pass


def parse_duration_ns(value: str) -> int | None:
    """A Go duration string in nanoseconds, or None when `value` is not one."""
    text = value.strip()
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not text:
        return None
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        return None
    return sign * int(total)


def _local_zone_datetime(naive: datetime) -> datetime:
    return naive.astimezone()  # a naive datetime means local time


def parse_timestamp(value: str, now_ns: int | None = None) -> int:
    """Parse a since/until value into Unix nanoseconds; raise TimeParseError with Docker's wording."""
    text = value.strip()
    if not text:
        raise TimeParseError("failed to parse value as time or duration: \"\"")
    now_ns = time.time_ns() if now_ns is None else now_ns

    m = _UNIX.match(text)
    if m:
        seconds = int(m.group(1))
        frac = m.group(2) or ""
        nanos = int((frac + "000000000")[:9]) if frac else 0
        return seconds * 1_000_000_000 + (nanos if seconds >= 0 else -nanos)

    duration = parse_duration_ns(text)
    if duration is not None:
        return now_ns - duration

    if "-" in text:
        parsed = _parse_date(text)
        if parsed is not None:
            return parsed
    raise TimeParseError(f"failed to parse value as time or duration: {value!r}".replace("'", '"'))


def _parse_date(text: str) -> int | None:
    nanos = 0
    m = _ISO_FRACTION.match(text)
    if m:
        digits = m.group(2)
        nanos = int((digits + "000000000")[:9])
        text = m.group(1) + m.group(3)
    zoned = text.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", text) is not None
    if zoned:
        iso = text[:-1] + "+00:00" if text.endswith("Z") else text
        try:
            dt = datetime.fromisoformat(iso)
        except ValueError:
            return None
        if dt.tzinfo is None:
            return None
    else:
        dt = None
        for form in _DATE_FORMS:
            try:
                dt = _local_zone_datetime(datetime.strptime(text, form))
                break
            except ValueError:
                continue
        if dt is None:
            return None
    seconds = int(dt.astimezone(timezone.utc).timestamp())
    return seconds * 1_000_000_000 + nanos


def format_unix_nano(ns: int) -> str:
    """The "<seconds>.<nanoseconds>" form the docker CLI sends for since/until."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def rfc3339_nano(ns: int, utc: bool = True) -> str:
    """Go's RFC3339Nano with fixed 9 digits (jsonmessage.RFC3339NanoFixed)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(seconds, timezone.utc if utc else None)
    if not utc:
        dt = dt.astimezone()
    offset = dt.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}" + zone
