"""The two ends bench/network.py measures with (one program on every path, so the paths differ only in
the network between them).

    netpeer.py serve PORT                      # accept forever: 'T' + 8-byte size -> that many zero
                                               # bytes; 'C' -> one byte back (connect latency)
    netpeer.py stream HOST PORT BYTES RUNS     # prints MB/s of each run, one a line
    netpeer.py connect HOST PORT COUNT         # prints ms of each connect + 1-byte round trip
"""
from __future__ import annotations

import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 20


def serve(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    zeros = bytes(CHUNK)
    print("ready", flush=True)

    def one(conn):
        with conn:
            kind = conn.recv(1)
            if kind == b"T":
                (size,) = struct.unpack("!Q", conn.recv(8, socket.MSG_WAITALL))
                view = memoryview(zeros)
                while size > 0:
                    size -= conn.send(view[:min(size, CHUNK)])
            elif kind == b"C":
                conn.sendall(b"c")

    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def stream(host: str, port: int, size: int, runs: int) -> None:
    buf = bytearray(CHUNK)
    for _ in range(runs):
        start = time.perf_counter()
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(b"T" + struct.pack("!Q", size))
            got = 0
            while got < size:
                n = s.recv_into(buf)
                if not n:
                    raise RuntimeError("short stream")
                got += n
        print(f"{size / (time.perf_counter() - start) / 1e6:.1f}", flush=True)


def connect(host: str, port: int, count: int) -> None:
    for _ in range(count):
        start = time.perf_counter()
        with socket.create_connection((host, port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"C")
            s.recv(1)
        print(f"{(time.perf_counter() - start) * 1000:.4f}", flush=True)


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "serve":
        serve(int(rest[0]))
    elif cmd == "stream":
        stream(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    else:
        connect(rest[0], int(rest[1]), int(rest[2]))
