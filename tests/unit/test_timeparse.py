import time

import pytest

from app.common.timeparse import (TimeParseError, format_unix_nano, parse_duration_ns, parse_timestamp,
                                  rfc3339_nano)

NOW = 1_700_000_000 * 10**9


@pytest.fixture(autouse=True)
def utc_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("value,expected", [
    ("0", 0),
    ("1700000000", NOW),
    ("1700000000.5", NOW + 500_000_000),
    ("1700000000.000000001", NOW + 1),
    ("1700000000.123456789123", NOW + 123_456_789),
    ("10m", NOW - 600 * 10**9),
    ("1h30m", NOW - 5400 * 10**9),
    ("1.5h", NOW - 5400 * 10**9),
    ("250ms", NOW - 250_000_000),
    ("-5s", NOW + 5 * 10**9),
    ("2023-11-14T22:13:20Z", NOW),
    ("2023-11-14T22:13:20.25Z", NOW + 250_000_000),
    ("2023-11-14T23:13:20+01:00", NOW),
    ("2023-11-14T22:13:20", NOW),
    ("2023-11-14T22:13", NOW - 20 * 10**9),
    ("2023-11-14", NOW - (22 * 3600 + 13 * 60 + 20) * 10**9),
])
def test_parse_timestamp(value, expected):
    assert parse_timestamp(value, NOW) == expected


@pytest.mark.parametrize("value", ["", "abc", "10x", "2023-13-45", "1.2.3", "m10", "2023-11-14T25:00:00Z"])
def test_parse_timestamp_rejects(value):
    with pytest.raises(TimeParseError, match="failed to parse value as time or duration"):
        parse_timestamp(value, NOW)


def test_local_time_without_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Etc/GMT-2")  # UTC+2
    time.tzset()
    assert parse_timestamp("2023-11-15T00:13:20", NOW) == NOW


def test_duration_helper():
    assert parse_duration_ns("1m30s") == 90 * 10**9
    assert parse_duration_ns("0") == 0
    assert parse_duration_ns("1d") is None
    assert parse_duration_ns("12") is None


def test_formats():
    assert format_unix_nano(NOW + 5) == "1700000000.000000005"
    assert rfc3339_nano(NOW + 5) == "2023-11-14T22:13:20.000000005Z"
    assert parse_timestamp(format_unix_nano(NOW + 123), NOW) == NOW + 123
