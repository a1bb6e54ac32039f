"""A small HTTP client for the berth API over a Unix socket or TCP, with keep-alive."""
from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlencode, urlsplit

from app.version import API_VERSION


class CannotConnect(Exception):
    pass


class APIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Client:
    def __init__(self, host: str, timeout: float | None = None):
        self.host = host
        if host.startswith("unix://"):
            self._conn = _UnixConnection(host[len("unix://"):], timeout=timeout)
        elif host.startswith("tcp://") or host.startswith("http://"):
            parts = urlsplit(host.replace("tcp://", "http://", 1))
            self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=timeout)
        else:
            raise CannotConnect(f"unsupported host {host!r}: use unix://PATH or tcp://HOST:PORT")

    def request(self, method: str, path: str, params: dict | None = None, body=None,
                headers: dict | None = None) -> http.client.HTTPResponse:
        """Send a request and return the response once its head has arrived; raise APIError on >= 400."""
        url = f"/v{API_VERSION}{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urlencode(query, doseq=True)
        hdrs = {"User-Agent": "berth-cli"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            self._conn.request(method, url, body=body, headers=hdrs)
            resp = self._conn.getresponse()
        except (ConnectionRefusedError, FileNotFoundError, PermissionError, socket.gaierror) as err:
            raise CannotConnect(
                f"Cannot connect to the berth daemon at {self.host}. Is the daemon running?") from err
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            raise CannotConnect(
                f"Cannot connect to the berth daemon at {self.host}. Is the daemon running? ({err})") from err
        if resp.status >= 400:
            raw = resp.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace").strip() or resp.reason
            raise APIError(resp.status, message)
        return resp

    def hijack(self, method: str, path: str, params: dict | None = None) -> tuple[socket.socket, bytes]:
        """Send an upgrade request on a connection of its own and return the raw socket once the daemon
        answers `101 UPGRADED`, with any bytes that arrived after the head."""
        url = f"/v{API_VERSION}{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urlencode(query, doseq=True)
        try:
            if isinstance(self._conn, _UnixConnection):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self._conn.unix_path)
            else:
                sock = socket.create_connection((self._conn.host, self._conn.port))
        except OSError as err:
            raise CannotConnect(
                f"Cannot connect to the berth daemon at {self.host}. Is the daemon running?") from err
        sock.sendall(f"{method} {url} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: berth-cli\r\n"
                     "Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                sock.close()
                raise CannotConnect("the daemon closed the connection during an attach")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 400:
            headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            length = int(headers.get(b"Content-Length", b"0").strip() or 0)
            while len(rest) < length and (chunk := sock.recv(65536)):
                rest += chunk
            sock.close()
            try:
                message = json.loads(rest)["message"]
            except (ValueError, KeyError, TypeError):
                message = rest.decode(errors="replace").strip()
            raise APIError(status, message)
        return sock, rest

    def get_json(self, path: str, params: dict | None = None):
        resp = self.request("GET", path, params)
        return json.loads(resp.read() or b"null")

    def close(self) -> None:
        self._conn.close()
