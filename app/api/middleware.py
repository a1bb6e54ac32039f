"""WSGI middleware in front of Flask: API version prefixes and the headers every response carries.

`/v1.41/containers/json` is routed as `/containers/json` with environ["berth.api_version"] = "1.41";
versions outside 1.24–1.45 get Docker's 400. Unversioned paths mean the newest version.
"""
from __future__ import annotations

import json
import re

from app.version import API_VERSION, MIN_API_VERSION, api_version_tuple as _as_tuple
from app.server import SERVER_NAME

_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)?$")
COMMON_HEADERS = [
    ("Api-Version", API_VERSION),
    ("Ostype", "linux"),
    ("Docker-Experimental", "false"),
    ("Builder-Version", "1"),
    ("Swarm", "inactive"),
    ("Server", SERVER_NAME),
]


_MAX, _MIN = _as_tuple(API_VERSION), _as_tuple(MIN_API_VERSION)


class ApiVersionMiddleware:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        def with_headers(status, headers, exc_info=None):
            present = {k.lower() for k, _ in headers}
            headers.extend(h for h in COMMON_HEADERS if h[0].lower() not in present)
            return start_response(status, headers, exc_info)

        path = environ.get("PATH_INFO", "")
        version = API_VERSION
        match = _PREFIX.match(path)
        if match:
            version = f"{int(match.group(1))}.{int(match.group(2))}"
            requested = (int(match.group(1)), int(match.group(2)))
            if requested > _MAX:
                return _error(with_headers, f"client version {version} is too new. "
                                            f"Maximum supported API version is {API_VERSION}")
            if requested < _MIN:
                return _error(with_headers, f"client version {version} is too old. Minimum supported API "
                                            f"version is {MIN_API_VERSION}, please upgrade your client to a "
                                            "newer version")
            environ["PATH_INFO"] = match.group(3) or "/"
        environ["berth.api_version"] = version
        return self.wsgi_app(environ, with_headers)


def _error(start_response, message: str):
    body = json.dumps({"message": message}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
