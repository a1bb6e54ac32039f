"""The server's sendfile path for FileSpans (app/server.py BerthGateway._send_span)."""
import os
import socket
import threading
import types

from app.common.filespan import FileSpan
from app.server import BerthGateway


def _gateway(sock, chunked: bool):
    req = types.SimpleNamespace(conn=types.SimpleNamespace(socket=sock), chunked_write=chunked,
                                ensure_headers_sent=lambda: None)
    return types.SimpleNamespace(req=req, remaining_bytes_out=None)


def _send(tmp_path, content: bytes, count: int, chunked: bool) -> bytes:
    path = tmp_path / "f"
    path.write_bytes(content)
    a, b = socket.socketpair()
    fd = os.open(path, os.O_RDONLY)
    got: list[bytes] = []

    def read():                         # the reader drains while the sender fills the socket buffer
        while chunk := b.recv(1 << 20):
            got.append(chunk)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        BerthGateway._send_span(_gateway(a, chunked), FileSpan(fd, count))
    finally:
        a.close()
        os.close(fd)
        reader.join(10)
        b.close()
    return b"".join(got)


def test_a_span_is_one_chunk_of_exactly_its_count(tmp_path):
    data = os.urandom(300_000)
    assert _send(tmp_path, data, len(data), chunked=True) == b"%x\r\n" % len(data) + data + b"\r\n"
    assert _send(tmp_path, data, len(data), chunked=False) == data


def test_a_file_that_shrank_is_padded_and_one_that_grew_is_cut(tmp_path):
    data = os.urandom(1000)
    assert _send(tmp_path, data, 4096, chunked=True) == b"1000\r\n" + data + bytes(3096) + b"\r\n"
    assert _send(tmp_path, data, 10, chunked=False) == data[:10]
