"""Version numbers berth advertises: its own release and the Docker Engine API range it speaks."""

VERSION = "0.1.0"
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"


def api_version_tuple(version: str) -> tuple[int, int]:
    """"1.45" -> (1, 45); a bare major ("1") is minor 0. The one parser of API versions."""
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)
