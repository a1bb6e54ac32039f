"""The HTTP server: cheroot (CherryPy's production WSGI server) on berth's own listening sockets.

Why cheroot (docs/architecture.md has the numbers): a bounded worker pool, HTTP/1.1 keep-alive and
chunked streaming, in one process (no prefork master, so the daemon's pid, lock and subreaper are one
process), and its connection object exposes the raw socket, which attach/exec need. Werkzeug's server
has no keep-alive and an unbounded thread per connection; waitress cannot hand out the socket.

berth binds the sockets itself (Unix socket mode, stale-socket detection, tcp://, systemd's fd://) and
gives them to cheroot. Two things are added to cheroot's WSGI gateway:
- an empty chunk yielded by a streaming response flushes the headers (cheroot would skip it), so
  clients that wait for headers before going on (`docker run`'s /wait, /events) are released at once;
- `environ["berth.hijack"](status, headers)` writes a raw response head (e.g. `101 UPGRADED`) and hands
  the handler the socket and its buffered reader; the connection is closed after the handler returns.
"""
from __future__ import annotations

import grp
import logging
import os
import socket
import ssl
import stat
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cheroot import makefile, wsgi

from app.common import filespan
from app.common.filespan import FileSpan
from app.connections import BerthConnection, HeadGate

from app.version import VERSION

SERVER_NAME = f"berth/{VERSION} (linux)"
SD_LISTEN_FDS_START = 3
DEFAULT_SOCKET_GROUP = "docker"   # dockerd's -G default
LARGE_WRITE = 64 * 1024

log = logging.getLogger("berth")


class ListenError(Exception):
    """A -H/--host value that cannot be served; the message is printed to the user."""


@dataclass
class Listener:
    url: str
    sock: socket.socket
    unix_path: str | None = None  # removed again at shutdown
    ssl_context: ssl.SSLContext | None = None   # TLS: accepted sockets are wrapped (app/connections.py)


def parse_host(url: str) -> tuple[str, str]:
    """Split a -H value into (scheme, address); raise ListenError when it is not one we serve."""
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not path.startswith("/"):
            raise ListenError(f"invalid unix socket path in {url!r}: must be absolute")
        return "unix", path
    if url.startswith("tcp://"):
        parts = urlsplit(url)
        if not parts.hostname or parts.port is None:
            raise ListenError(f"invalid tcp address {url!r}: want tcp://HOST:PORT")
        return "tcp", url
    if url.startswith("fd://"):
        return "fd", url[len("fd://"):]
    raise ListenError(f"invalid daemon address {url!r}: use unix://PATH, tcp://HOST:PORT or fd://")


def socket_gid(group: str, path: str) -> int | None:
    """-G/--group as dockerd resolves it: a group name or number; the default group `docker` may be
    missing (the socket then stays root's group, with a warning), a group the user named may not."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        return int(group)
    if group != DEFAULT_SOCKET_GROUP:
        raise ListenError(f"group {group} not found")
    log.warning("could not change group %s to %s: group %s not found", path, group, group)
    return None


def _bind_unix(path: str, group: str = "") -> socket.socket:
    gid = socket_gid(group, path)
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise ListenError(f"cannot listen on {path}: the path exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody answers on it
        else:
            raise ListenError(f"cannot listen on {path}: another daemon is serving it")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)  # born 0660: never briefly world-writable
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, 0o660)
    return sock


def _bind_tcp(url: str) -> socket.socket:
    parts = urlsplit(url)
    family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((parts.hostname, parts.port))
    except OSError as err:
        sock.close()
        raise ListenError(f"cannot listen on {url}: {err.strerror}") from err
    return sock


def _activated_sockets(which: str) -> list[socket.socket]:
    """Sockets passed by systemd socket activation (LISTEN_PID/LISTEN_FDS)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        raise ListenError("fd:// needs socket activation: LISTEN_PID does not name this process")
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    if count < 1:
        raise ListenError("fd:// needs socket activation: LISTEN_FDS names no socket")
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    if which:
        if not which.isdigit() or int(which) not in fds:
            raise ListenError(f"fd://{which} is not one of the activated sockets {fds}")
        fds = [int(which)]
    return [socket.socket(fileno=fd) for fd in fds]


def open_listeners(hosts: list[str], ssl_context: ssl.SSLContext | None = None,
                   socket_group: str = "") -> list[Listener]:
    """Bind every -H address; on any failure close what was bound and raise ListenError. TLS applies to
    tcp:// and fd:// (as in dockerd), the group to unix:// sockets."""
    listeners: list[Listener] = []
    try:
        for url in hosts:
            scheme, address = parse_host(url)
            if scheme == "unix":
                listeners.append(Listener(url, _bind_unix(address, socket_group), unix_path=address))
            elif scheme == "tcp":
                listeners.append(Listener(url, _bind_tcp(address), ssl_context=ssl_context))
            else:
                listeners.extend(Listener(url, s, ssl_context=ssl_context) for s in _activated_sockets(address))
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


def close_listeners(listeners: list[Listener]) -> None:
    for listener in listeners:
        try:
            listener.sock.close()
        except OSError:
            pass
        if listener.unix_path:
            try:
                os.unlink(listener.unix_path)
            except FileNotFoundError:
                pass


class SocketBody:
    """A request body read straight from the socket, for large uploads (import, load, later build/cp).

    cheroot's reader is Python's pure-Python `_pyio` BufferedReader: py-spy put two thirds of a 200 MB
    import in it. This reads with `recv_into`, after taking what cheroot had already buffered, and
    de-chunks `Transfer-Encoding: chunked` itself. `read(n)` returns n bytes unless the body ends.
    """

    def __init__(self, req):
        self._req = req
        self._sock = req.conn.socket
        rfile = req.conn.rfile
        self._buf = bytearray(rfile._read_buf[rfile._read_pos:])  # bytes cheroot read ahead
        rfile._reset_read_buf()
        self._chunked = req.chunked_read
        self._left = None if self._chunked else int(req.inheaders.get(b"Content-Length", 0) or 0)
        self._chunk_left = 0
        self._done = self._left == 0
        if self._chunked:
            req.close_connection = True  # a body left half-read must not be parsed as the next request

    def _fill(self, want: int) -> None:
        chunk = self._sock.recv(max(want, 1 << 16))
        if not chunk:
            raise ConnectionError("client closed the connection in the middle of the request body")
        self._buf += chunk

    def _take_into(self, out: bytearray, n: int) -> None:
        """Append n body bytes to out: first what is buffered, then straight from the socket into out
        (one copy, no intermediate buffers)."""
        if self._buf:
            m = min(n, len(self._buf))
            out += memoryview(self._buf)[:m]
            del self._buf[:m]
            n -= m
        if n <= 0:
            return
        start = len(out)
        out.extend(bytes(n))
        view = memoryview(out)
        try:
            got = 0
            while got < n:
                k = self._sock.recv_into(view[start + got:], n - got)
                if k == 0:
                    raise ConnectionError("client closed the connection in the middle of the request body")
                got += k
        finally:
            view.release()

    def _line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > 4096:
                raise ValueError("chunk header line too long")
            self._fill(64)
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self._done and (n < 0 or len(out) < n):
            want = (1 << 20) if n < 0 else n - len(out)
            if self._chunked:
                if self._chunk_left == 0:
                    size = int(self._line().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self._line():    # trailers, up to the empty line
                            pass
                        self._done = True
                        break
                    self._chunk_left = size
                take = min(want, self._chunk_left)
                self._take_into(out, take)
                self._chunk_left -= take
                if self._chunk_left == 0:
                    crlf = bytearray()
                    self._take_into(crlf, 2)   # the CRLF after a chunk
            else:
                take = min(want, self._left)
                self._take_into(out, take)
                self._left -= take
                self._req.rfile.remaining = self._left  # keeps cheroot's own drain-before-reuse right
                self._done = self._left == 0
        return bytes(out)


class BerthGateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway plus header flushing on empty chunks and socket takeover."""

    _hijacked = False

    def get_environ(self):
        env = super().get_environ()
        env["berth.socket"] = self.req.conn.socket
        env["berth.hijack"] = self._hijack
        env["berth.body"] = lambda: SocketBody(self.req)
        env[filespan.ENVIRON_KEY] = True
        env["berth.streams"] = self.req.server.streams
        return env

    def respond(self):
        response = self.req.server.wsgi_app(self.env, self.start_response)
        stream = self.env.get("berth.stream")
        if stream is not None:
            self._hand_off(stream, response)
            return
        try:
            for chunk in response:
                if self._hijacked:
                    continue
                if chunk:
                    self.write(chunk)
                elif self.started_response:
                    self.req.ensure_headers_sent()  # an empty chunk means "send the head now"
        finally:
            if not self._hijacked:
                self.req.ensure_headers_sent()
            if hasattr(response, "close"):
                response.close()

    def _hand_off(self, stream, response):
        """Send the head from this worker, then let the stream's own thread produce the rest, so the
        worker is free again at once. The connection is the stream's from here on: it is closed when
        the stream ends (cheroot is told to leave the socket alone: `linger`), or, for a stream that
        asked for it (`reusable`, e.g. /wait) on a kept-alive request, given back to the gate for the
        next request once the response has ended cleanly (`BerthConnection.lend`)."""
        req, conn = self.req, self.req.conn
        chunks = iter(response)
        first = b""
        if not self._hijacked:
            # A stream's first step sets it up (e.g. /events registers its listener) and yields the
            # empty chunk that means "send the head now": run that here, so the head means "ready".
            try:
                first = next(chunks, b"")
            except BaseException:
                stream.registry.release(stream)     # never ran: give its place back
                raise
            if not (stream.reusable and not req.chunked_read and isinstance(conn, BerthConnection)):
                req.close_connection = True
            req.ensure_headers_sent()       # cheroot decides keep-alive (client, HTTP version, room)
        chunked = req.chunked_write and not self._hijacked
        # only a chunked body shows the client where the response ends without a close
        reuse = chunked and not req.close_connection
        req.chunked_write = False           # cheroot would write the last chunk as the worker leaves
        sock = conn.socket
        if reuse:
            conn.lend()                     # the worker's close() after this request only lets go
        else:
            conn.linger = True              # cheroot's close() must not shut the socket down
        req.close_connection = True         # (after the head) the worker must not keep the connection

        def pump():
            done = False
            try:
                if first:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(first), first) if chunked else first)
                for chunk in chunks:
                    if chunk and not self._hijacked:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
                done = True
            except OSError:
                pass                        # the client went away
            finally:
                try:
                    if hasattr(response, "close"):
                        response.close()
                finally:
                    if reuse:
                        # after the registry has let go of the socket, so the gate has it alone; a
                        # client that left (or the daemon stopping) cancelled the stream: closed then
                        stream.after_release(lambda: conn.stream_done(done and not stream.client_gone()))
                    else:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        try:
                            conn.wfile.close()
                        except OSError:
                            pass
                        sock.close()

        try:
            stream.run(pump)
        except BaseException:               # no thread: the pump's finally never runs
            stream.registry.release(stream)
            if reuse:
                conn.stream_done(False)
            else:
                sock.close()
            raise

    def write(self, chunk):
        if isinstance(chunk, FileSpan):
            return self._send_span(chunk)
        # cheroot's socket writer copies its whole buffer and memmoves it after every partial send,
        # which is quadratic for megabyte chunks (save, export); send big chunks straight to the socket.
        if len(chunk) < LARGE_WRITE or self.remaining_bytes_out is not None:
            return super().write(chunk)
        self.req.ensure_headers_sent()
        sock = self.req.conn.socket
        if self.req.chunked_write:
            sock.sendall(b"%x\r\n" % len(chunk))
            sock.sendall(chunk)
            sock.sendall(b"\r\n")
        else:
            sock.sendall(chunk)

    def _send_span(self, span: FileSpan) -> None:
        """A file's bytes by sendfile(2), in one chunk of exactly span.count bytes (zeros make up for
        a file that shrank since its size was promised)."""
        if self.remaining_bytes_out is not None:        # a Content-Length body: through cheroot's counts
            data = os.pread(span.fd, span.count, 0)
            return self.write(data + bytes(span.count - len(data)))
        self.req.ensure_headers_sent()
        sock = self.req.conn.socket
        if self.req.chunked_write:
            sock.sendall(b"%x\r\n" % span.count)
        with os.fdopen(os.dup(span.fd), "rb", buffering=0) as fh:
            sent = sock.sendfile(fh, 0, span.count) if span.count else 0
        while sent < span.count:
            pad = min(span.count - sent, 1 << 20)
            sock.sendall(bytes(pad))
            sent += pad
        if self.req.chunked_write:
            sock.sendall(b"\r\n")

    def start_response(self, status, headers, exc_info=None):
        if self._hijacked:
            return self.write
        return super().start_response(status, headers, exc_info)

    def _hijack(self, status: str, headers: list[tuple[str, str]]):
        req = self.req
        head = [f"HTTP/1.1 {status}\r\n"] + [f"{k}: {v}\r\n" for k, v in headers] + ["\r\n"]
        req.conn.wfile.write("".join(head).encode("latin-1"))
        self._hijacked = True
        req.sent_headers = True
        req.chunked_write = False
        req.close_connection = True
        req.conn.socket.settimeout(None)  # the stream lives as long as the container or process does
        # A reader of our own (cheroot closes its rfile when the worker lets go of the connection),
        # starting with whatever cheroot had already read past the head.
        rfile = req.conn.rfile
        reader = makefile.StreamReader(req.conn.socket, "rb")
        reader._read_buf, reader._read_pos = bytes(rfile._read_buf[rfile._read_pos:]), 0
        rfile._reset_read_buf()
        return req.conn.socket, reader


class BerthServer(wsgi.Server):
    """A cheroot server on a socket berth has already bound. Heads are read outside the pool
    (app/connections.py); streams leave the pool once their head is sent (app/streams.py)."""

    keep_alive_conn_limit = 256
    ConnectionClass = BerthConnection

    def __init__(self, listener: Listener, app, threads: int, streams=None, max_connections: int = 2048,
                 head_timeout: float = 10.0, idle_timeout: float = 10.0):
        from app.streams import StreamRegistry
        bind_addr = listener.unix_path or listener.sock.getsockname()
        # cheroot's default backlog is 5: a burst of clients then gets EAGAIN from connect() on a Unix
        # socket (seen with 20 parallel docker-py clients). Its __init__ sets these on the instance.
        super().__init__(bind_addr, app, numthreads=threads, server_name=SERVER_NAME,
                         request_queue_size=socket.SOMAXCONN, shutdown_timeout=10)
        self.gateway = BerthGateway  # cheroot's __init__ sets its own gateway on the instance
        self.listener = listener
        self.streams = streams if streams is not None else StreamRegistry(1024)
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.timeout = idle_timeout   # cheroot: socket timeout while a worker reads a body / writes

    def prepare(self):
        # cheroot's own prepare() would bind (and chmod a Unix socket 0777); ours only listens.
        self._interrupt = None
        if self.software is None:
            self.software = SERVER_NAME
        self.socket = self.listener.sock
        self.socket.settimeout(0)
        self.socket.listen(self.request_queue_size)
        self._connections = HeadGate(self, self.max_connections, self.head_timeout, self.timeout,
                                     self.listener.ssl_context)
        self.requests.start()
        self.ready = True
        self._start_time = time.time()
