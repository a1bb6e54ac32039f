"""A small HTTP/1.1 client for the berth API over a Unix socket or TCP, with keep-alive.

Written on the socket module rather than http.client: importing http.client (it pulls in the email
package and ssl) was about a quarter of the CLI's start-up, and the CLI needs only plain requests,
Content-Length and chunked bodies, and the connection hijack of attach.
"""
from __future__ import annotations

import json
import os
import select
import socket
from urllib.parse import urlencode, urlsplit

from app.version import API_VERSION

_BUFFER = 65536
_LARGE_READ = 1 << 20


class CannotConnect(Exception):
    pass


class APIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ProtocolError(Exception):
    """The daemon's answer is not HTTP as we know it, or it ended early."""


class IncompleteRead(ProtocolError):
    def __init__(self, missing: int | None):
        super().__init__(f"the response ended {missing} bytes early" if missing else "the response ended early")
        self.missing = missing


class Response:
    """A response whose head has been read; its body is read on demand (read, read1, readline), from
    a Content-Length body, a chunked one, or one that runs until the daemon closes."""

    def __init__(self, conn: "Connection", status: int, reason: str, headers: dict[str, str], body: bool):
        self._conn = conn
        self._generation = conn.generation    # a response outlived by its connection is not read on
        self.status = status
        self.reason = reason
        self.headers = headers
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            raise ProtocolError(f"bad Content-Length {length[:40]!r}")
        self.length = None if self.chunked or length is None else int(length)   # bytes still to come
        if not body:
            self.length = 0
        self._chunk_left = 0          # chunked: bytes left in the current chunk
        self._done = self.length == 0
        self.will_close = headers.get("connection", "").lower() == "close" or (
            self.length is None and not self.chunked)
        if self._done:
            conn.response_finished(self)

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def _next_piece(self, limit: int, line: bool = False, into: int | None = None):
        """Up to `limit` body bytes (up to a line end, with `line`) from what is buffered or one
        receive; b"" at the end of the body. With `into` (a pipe's fd) the bytes are moved there
        instead and their count returned (0 at the end)."""
        end = b"" if into is None else 0
        if self._done:
            return end
        conn = self._conn
        if conn.generation != self._generation:
            raise ProtocolError("the connection of this response was closed or reused")

        def some(n: int):
            return conn.read_some(n, line) if into is None else conn.move_some(into, n)

        if self.chunked:
            if self._chunk_left == 0:
                size_line = conn.readline()
                if not size_line.endswith(b"\n"):
                    raise IncompleteRead(None)
                try:
                    self._chunk_left = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_line[:40]!r}") from None
                if self._chunk_left == 0:
                    while conn.readline() not in (b"\r\n", b"\n", b""):   # trailers
                        pass
                    self._finish()
                    return end
            data = some(min(limit, self._chunk_left))
            if not data:
                raise IncompleteRead(self._chunk_left)
            self._chunk_left -= data if into is not None else len(data)
            if self._chunk_left == 0 and conn.readline() not in (b"\r\n", b"\n"):
                raise ProtocolError("a chunk did not end with CRLF")
            return data
        if self.length is None:                       # until the daemon closes
            data = some(limit)
            if not data:
                self._finish()
            return data
        data = some(min(limit, self.length))
        if not data:
            self._done = True                         # `length` stays > 0: the caller sees it was cut
            conn.close()
            return end
        self.length -= data if into is not None else len(data)
        if self.length == 0:
            self._finish()
        return data

    def copy_to(self, fd: int, counted=None) -> int:
        """The rest of the body written to the pipe `fd` (spliced from the socket, never through
        Python's memory, where the connection allows). `counted(n)` sees every step."""
        total = 0
        while n := self._next_piece(_LARGE_READ, into=fd):
            total += n
            if counted is not None:
                counted(n)
        if self.length:
            raise IncompleteRead(self.length)
        return total

    def _finish(self) -> None:
        self._done = True
        self._conn.response_finished(self)

    def read1(self, limit: int = _BUFFER) -> bytes:
        return self._next_piece(limit)

    def read(self, size: int = -1) -> bytes:
        """`size` bytes, or fewer at the end of the body; the whole body without a size, which
        raises IncompleteRead when the daemon hung up before its Content-Length was reached."""
        parts, want = [], size
        while want != 0:
            data = self._next_piece(_BUFFER if want < 0 else want)
            if not data:
                break
            parts.append(data)
            if want > 0:
                want -= len(data)
        if size < 0 and self.length:
            raise IncompleteRead(self.length)
        return b"".join(parts)

    def readline(self) -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            data = self._next_piece(_BUFFER, line=True)
            if not data:
                break
            line += data
        return line


class Connection:
    """One keep-alive connection to the daemon, reopened when the daemon closed it."""

    def __init__(self, address: str | tuple[str, int], timeout: float | None, ssl_context=None):
        """`address`: a Unix socket path, or (host, port) for TCP; `ssl_context`: TLS on TCP (app/tls.py)."""
        self.address, self.timeout, self.ssl_context = address, timeout, ssl_context
        self.sock: socket.socket | None = None
        self.generation = 0           # bumped on close: responses of an earlier socket stop reading
        self._buf = b""
        self._pos = 0                 # bytes of _buf already handed out
        self._open_response: Response | None = None

    def connect(self) -> socket.socket:
        if not isinstance(self.address, str):
            sock = socket.create_connection(self.address, timeout=self.timeout)   # IPv4 or IPv6
            if self.ssl_context is None:
                return sock
            try:
                return self.ssl_context.wrap_socket(sock, server_hostname=self.address[0])
            except BaseException:
                sock.close()
                raise
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, method: str, url: str, headers: dict[str, str], body) -> Response:
        if self._open_response is not None:           # the last body was not read to its end
            self.close()
        head = [f"{method} {url} HTTP/1.1", "Host: localhost"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = b""
        chunks = None
        if body is None:
            if method in ("POST", "PUT"):
                head.append("Content-Length: 0")
        elif isinstance(body, (bytes, bytearray)):
            head.append(f"Content-Length: {len(body)}")
            data = bytes(body)
        else:                                         # a file or an iterator of bytes: sent chunked
            head.append("Transfer-Encoding: chunked")
            chunks = body
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.sock is not None and self._closed_by_peer():
            self.close()                              # the daemon closed this idle keep-alive connection
        reused = self.sock is not None
        try:
            self._send(raw_head, data, chunks)
            return self._read_response(method)
        except (ConnectionResetError, BrokenPipeError, ProtocolError):
            # The daemon may have acted on the request before it went away: only a request that
            # changes nothing is sent again.
            if not reused or chunks is not None or method not in ("GET", "HEAD"):
                raise
            self.close()
            self._send(raw_head, data, None)
            return self._read_response(method)

    def _closed_by_peer(self) -> bool:
        """An idle connection that has something to read has been closed (or is broken): a daemon
        sends nothing unasked."""
        if self._pos < len(self._buf):
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        if self.ssl_context is not None:
            return self._tls_closed_by_peer()
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _tls_closed_by_peer(self) -> bool:
        """TLS records cannot be peeked at, and a TLS 1.3 daemon sends session tickets unasked: read
        without blocking; only protocol records (SSLWantReadError) mean the connection is still open."""
        import ssl
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(_BUFFER)
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            return True
        self._buf, self._pos = data, 0                # unasked bytes: kept, the response parser judges them
        return False

    def _send(self, raw_head: bytes, data: bytes, chunks) -> None:
        if self.sock is None:
            self.sock = self.connect()
        if chunks is None:
            self.sock.sendall(raw_head + data)
            return
        self.sock.sendall(raw_head)
        for piece in _pieces(chunks):
            if piece:
                self.sock.sendall(b"%x\r\n" % len(piece))
                self.sock.sendall(piece)            # not copied into one buffer with its framing
                self.sock.sendall(b"\r\n")
        self.sock.sendall(b"0\r\n\r\n")

    def _read_response(self, method: str) -> Response:
        while True:
            status_line = self.readline()
            if not status_line:
                raise ProtocolError("the daemon closed the connection without answering")
            parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (
                    parts[1].isascii() and parts[1].isdigit()):
                raise ProtocolError(f"not an HTTP response: {status_line[:60]!r}")
            headers = {}
            while (line := self.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    raise ProtocolError("the daemon closed the connection in a response head")
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue                              # informational: the real answer follows
            body = method != "HEAD" and status not in (204, 304)
            self._open_response = None
            resp = Response(self, status, parts[2] if len(parts) > 2 else "", headers, body)
            if not resp._done:
                self._open_response = resp
            return resp

    def response_finished(self, resp: Response) -> None:
        if self._open_response is resp:
            self._open_response = None
        if resp.will_close:
            self.close()

    def read_some(self, limit: int, line: bool = False) -> bytes:
        """Up to `limit` bytes (and no further than a line end, with `line`); b"" when closed."""
        if self._pos >= len(self._buf):
            if self.sock is None:
                return b""
            if not line and limit > _BUFFER:        # a large body read: straight from the socket
                return self.sock.recv(min(limit, _LARGE_READ))
            self._buf, self._pos = self.sock.recv(_BUFFER), 0
        start = self._pos
        end = min(start + limit, len(self._buf))
        if line:
            newline = self._buf.find(b"\n", start, end)
            if newline >= 0:
                end = newline + 1
        self._pos = end
        return self._buf[start:end]

    def move_some(self, fd: int, limit: int) -> int:
        """Up to `limit` bytes moved into the pipe `fd`: what is buffered, else spliced from a plain
        socket (a TLS one is read and written); 0 when closed."""
        if self._pos < len(self._buf):
            end = min(self._pos + limit, len(self._buf))
            n = os.write(fd, self._buf[self._pos:end])
            self._pos += n
            return n
        if self.sock is None:
            return 0
        if self.ssl_context is not None or not hasattr(os, "splice"):
            data = self.sock.recv(min(limit, _LARGE_READ))
            _write_all(fd, data)
            return len(data)
        while True:
            try:
                return os.splice(self.sock.fileno(), fd, min(limit, _LARGE_READ))
            except BlockingIOError:                 # a socket with a timeout is non-blocking
                readable, _, _ = select.select([self.sock], [], [], self.timeout)
                if not readable:
                    raise socket.timeout("timed out reading from the daemon") from None

    def readline(self) -> bytes:
        """One line of a response head."""
        while (newline := self._buf.find(b"\n", self._pos)) < 0:
            data = self.sock.recv(_BUFFER) if self.sock is not None else b""
            if not data:
                line, self._buf, self._pos = self._buf[self._pos:], b"", 0
                return line
            self._buf, self._pos = self._buf[self._pos:] + data, 0
        line = self._buf[self._pos:newline + 1]
        self._pos = newline + 1
        return line

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self._buf, self._pos = b"", 0
        self._open_response = None
        self.generation += 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pieces(body):
    if hasattr(body, "read"):
        while data := body.read(_LARGE_READ):
            yield data
    else:
        yield from body


class Client:
    def __init__(self, host: str, timeout: float | None = None, ssl_context=None):
        """`ssl_context` (app/tls.client_settings) puts TLS on a tcp:// host; 2376 is then the default port."""
        self.host = host
        if host.startswith("unix://"):
            self._conn = Connection(host[len("unix://"):], timeout)
        elif host.startswith("tcp://") or host.startswith("http://"):
            parts = urlsplit(host.replace("tcp://", "http://", 1))
            default_port = 2376 if ssl_context is not None else 2375
            self._conn = Connection((parts.hostname, parts.port or default_port), timeout, ssl_context)
        else:
            raise CannotConnect(f"unsupported host {host!r}: use unix://PATH or tcp://HOST:PORT")

    def another(self) -> "Client":
        """A client of its own to the same daemon, with the same TLS (for requests made in parallel)."""
        return Client(self.host, self._conn.timeout, self._conn.ssl_context)

    def _cannot_connect(self, err: BaseException | None = None) -> CannotConnect:
        detail = f" ({err})" if err is not None else ""
        return CannotConnect(f"Cannot connect to the berth daemon at {self.host}. Is the daemon running?{detail}")

    def request(self, method: str, path: str, params: dict | None = None, body=None,
                headers: dict | None = None) -> Response:
        """Send a request and return the response once its head has arrived; raise APIError on >= 400."""
        hdrs = {"User-Agent": "berth-cli"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            resp = self._conn.request(method, _url(path, params), hdrs, body)
        except (ConnectionRefusedError, FileNotFoundError, PermissionError, socket.gaierror) as err:
            self._conn.close()
            raise self._cannot_connect() from err
        except (ProtocolError, OSError) as err:
            self._conn.close()
            raise self._cannot_connect(err) from err
        if resp.status >= 400:
            raw = resp.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace").strip() or resp.reason
            raise APIError(resp.status, message)
        return resp

    def hijack(self, method: str, path: str, params: dict | None = None, body: dict | None = None
               ) -> tuple[socket.socket, bytes]:
        """Send an upgrade request on a connection of its own and return the raw socket once the daemon
        answers `101 UPGRADED`, with any bytes that arrived after the head."""
        conn = Connection(self._conn.address, None, self._conn.ssl_context)
        try:
            sock = conn.connect()
        except OSError as err:
            raise self._cannot_connect() from err
        try:
            return self._upgrade(sock, method, path, params, body)
        except OSError as err:
            sock.close()
            raise self._cannot_connect(err) from err
        except (ValueError, IndexError) as err:
            sock.close()
            raise CannotConnect(f"the daemon's answer to an attach is not HTTP: {err}") from err

    @staticmethod
    def _upgrade(sock: socket.socket, method: str, path: str, params: dict | None, body: dict | None = None
                 ) -> tuple[socket.socket, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        sock.sendall(f"{method} {_url(path, params)} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: berth-cli\r\n"
                     f"{kind}Content-Length: {len(data)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
                     + data)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(_BUFFER)
            if not chunk:
                sock.close()
                raise CannotConnect("the daemon closed the connection during an attach")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 400:
            headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            length = int(headers.get(b"Content-Length", b"0").strip() or 0)
            while len(rest) < length and (chunk := sock.recv(_BUFFER)):
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


def _url(path: str, params: dict | None) -> str:
    url = f"/v{API_VERSION}{path}"
    query = {k: v for k, v in (params or {}).items() if v is not None}
    if query:
        url += "?" + urlencode(query, doseq=True)
    return url
