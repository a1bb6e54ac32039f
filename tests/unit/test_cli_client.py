"""The CLI's own HTTP client against a scripted server on a Unix socket: bodies by Content-Length,
chunked and until-close, keep-alive reuse, an idle connection the server closed, and cut bodies."""
from __future__ import annotations

import os
import socket
import tempfile
import threading

import pytest

from app.cli.client import APIError, CannotConnect, Client, IncompleteRead, ProtocolError


class Scripted:
    """Accepts connections and answers the n-th request with replies[n] (raw bytes). After a reply
    marked `close`, the server closes that connection. Records every request head it read."""

    def __init__(self, replies: list[tuple[bytes, bool]]):
        self.dir = tempfile.mkdtemp(prefix="berth-test-client-")
        self.path = os.path.join(self.dir, "api.sock")
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.replies:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while self.replies:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    if b"chunked" in head.lower():
                        while not buf.endswith(b"0\r\n\r\n"):
                            buf += conn.recv(65536)
                        head += b"\r\n\r\n" + buf
                        buf = b""
                    self.requests.append(head)
                    reply, close = self.replies.pop(0)
                    conn.sendall(reply)
                    if close:
                        break

    def close(self):
        self.listener.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def server(request):
    servers = []

    def make(*replies):
        s = Scripted(list(replies))
        servers.append(s)
        return s, Client("unix://" + s.path, timeout=5)

    yield make
    for s in servers:
        s.close()


def test_content_length_chunked_and_keep_alive(server):
    srv, client = server(
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": [1]}\n", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"6\r\nline1\n\r\n9\r\nline2\nlin\r\n3\r\ne3\n\r\n0\r\n\r\n", False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    )
    assert client.get_json("/x", {"all": "1", "skip": None}) == {"a": [1]}
    resp = client.request("GET", "/events")
    assert [resp.readline(), resp.readline(), resp.readline(), resp.readline()] == [
        b"line1\n", b"line2\n", b"line3\n", b""]
    assert client.request("POST", "/containers/c/start", body={"k": "v"}).status == 204
    assert srv.connections == 1                     # one connection carried all three
    assert srv.requests[0].startswith(b"GET /v1.45/x?all=1 HTTP/1.1\r\n")
    assert b"Content-Type: application/json" in srv.requests[2] and b"Content-Length: 10" in srv.requests[2]
    client.close()


def test_streamed_upload_is_chunked_and_error_bodies_become_api_errors(server):
    srv, client = server(
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 31\r\n\r\n{\"message\":\"No such image: x\"}\n", False),
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n", False),
    )
    with pytest.raises(APIError) as err:
        client.request("POST", "/images/load", body=iter([b"abc", b"", b"defgh"]))
    assert (err.value.status, err.value.message) == (404, "No such image: x")
    assert srv.requests[0].endswith(b"\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n")
    with pytest.raises(APIError) as err:
        client.request("GET", "/y")
    assert (err.value.status, err.value.message) == (500, "oops")
    client.close()


def test_a_half_read_body_or_a_closed_idle_connection_means_a_new_connection(server):
    srv, client = server(
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", True),    # then closes, unannounced
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", False),
    )
    assert client.request("GET", "/a").read(3) == b"012"
    assert client.request("GET", "/b").read() == b"ok"          # on a fresh connection
    assert client.request("GET", "/c").read() == b"hi"          # the server said it would close
    assert client.request("GET", "/d").read() == b"yes"         # sent again on a new connection
    assert srv.connections == 4
    assert [r.split(b" ")[1] for r in srv.requests] == [b"/v1.45/a", b"/v1.45/b", b"/v1.45/c", b"/v1.45/d"]
    client.close()


def test_until_close_bodies_and_cut_bodies(server):
    srv, client = server(
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n\r\nall of it", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", True),
    )
    resp = client.request("GET", "/export")
    assert (resp.getheader("content-type"), resp.read()) == ("application/x-tar", b"all of it")
    resp = client.request("GET", "/images/get")
    with pytest.raises(IncompleteRead) as err:
        resp.read()
    assert err.value.missing == 91
    resp = client.request("GET", "/events")
    with pytest.raises(IncompleteRead):
        resp.read()
    client.close()


def test_nobody_listening_is_cannot_connect(tmp_path):
    client = Client(f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(CannotConnect, match="Is the daemon running"):
        client.request("GET", "/_ping")
    with pytest.raises(CannotConnect):
        Client("ssh://host")


def test_read_in_pieces_shows_a_cut_body_in_length(server):
    srv, client = server((b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", True))
    resp = client.request("GET", "/images/get")
    assert resp.read(64) == b"only this" and resp.read(64) == b"" and resp.length == 91   # what save checks
    client.close()


def test_an_idle_connection_the_daemon_closed_is_replaced_before_a_post(server):
    srv, client = server(
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", True),     # then closes, unannounced
        (b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", False),
    )
    assert client.request("GET", "/a").read() == b"hi"
    import select
    assert select.select([client._conn.sock], [], [], 5)[0]   # the server's close has arrived
    assert client.request("POST", "/containers/create", body={}).status == 201
    assert srv.connections == 2 and len(srv.requests) == 2


def test_a_post_the_daemon_read_but_did_not_answer_is_not_sent_again(server):
    srv, client = server(
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"", True),                                          # reads the POST, then hangs up
        (b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", False),
    )
    assert client.request("GET", "/a").read() == b"ok"
    with pytest.raises(CannotConnect):
        client.request("POST", "/containers/create", body={})
    assert [r.split(b" ")[0] for r in srv.requests] == [b"GET", b"POST"]      # once, not twice
    client.close()


def test_informational_answers_are_skipped_and_a_stale_response_stops_reading(server):
    srv, client = server(
        (b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", False),
    )
    old = client.request("GET", "/a")
    assert old.status == 200 and old.read(2) == b"fi"
    new = client.request("GET", "/b")                          # on a new connection: `old` is over
    with pytest.raises(ProtocolError):
        old.read()
    assert new.read() == b"second"
    client.close()


def test_a_garbled_head_is_cannot_connect_not_a_traceback(server):
    srv, client = server((b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", True),
                         (b"HTTP/1.1 \xb2\xb3\xb9 OK\r\n\r\n", True))   # latin-1 digits: isdigit() but not int()
    for path in ("/a", "/b"):
        with pytest.raises(CannotConnect, match="bad Content-Length|not an HTTP response"):
            client.request("GET", path)
    client.close()
