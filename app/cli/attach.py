"""The client side of a hijacked attach: our stdin to the container, its output to our stdout/stderr.

Used by foreground `run`, `start -a` and `attach`. The daemon applies the detach keys; when it ends the
stream the session ends. With a TTY the local terminal is put in raw mode for the duration.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
from urllib.parse import quote

from app.cli.client import APIError, CannotConnect, ProtocolError
from app.common.detachkeys import DetachScanner, parse_detach_keys
from app.errors import InvalidParameter

STREAMS = ("stdin", "stdout", "stderr")


def parse_attach_flags(values: list[str]) -> set[str]:
    """`-a stdout -a STDERR` → {"stdout", "stderr"}, with the docker CLI's error for anything else."""
    streams = set()
    for value in values:
        if value.lower() not in STREAMS:
            raise ValueError(f'invalid argument "{value}" for "-a, --attach" flag: valid streams are STDIN, '
                             "STDOUT and STDERR")
        streams.add(value.lower())
    return streams


class AttachSession:
    def __init__(self, client, cid: str, streams: set[str], tty: bool, detach_keys: str | None = None):
        self.tty = tty
        self.stdin = "stdin" in streams
        self.detached = False                # we sent the detach keys (the daemon applies them on a TTY)
        try:
            self._keys = parse_detach_keys(detach_keys)
        except InvalidParameter:
            self._keys = b""                 # the daemon refuses the request with Docker's message
        params = {"stream": "1", "detachKeys": detach_keys}
        params.update({s: "1" for s in streams})
        self.sock, self._pending = client.hijack("POST", f"/containers/{quote(cid)}/attach", params)

    def run(self) -> None:
        """Relay until the daemon ends the stream (container exit or detach)."""
        restore = self._raw_terminal() if self.tty and self.stdin else None
        try:
            if self.stdin:
                threading.Thread(target=self._send_stdin, name="stdin", daemon=True).start()
            self._receive()
        finally:
            if restore:
                restore()
            self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _send_stdin(self) -> None:
        scanner = DetachScanner(self._keys) if self.tty else None
        try:
            while data := os.read(sys.stdin.fileno(), 65536):
                if scanner and scanner.feed(data)[1]:
                    # noted before the keys go out: the daemon ends the stream as soon as it sees
                    # them, and the main thread reads this flag the moment the stream ends
                    self.detached = True
                    try:
                        self.sock.sendall(data)
                    except OSError:
                        self.detached = False       # they never arrived: the container's exit counts
                        raise
                    return
                self.sock.sendall(data)
            # our stdin ended: the daemon closes the container's. On TLS, the TCP half-close under the
            # session (SSLSocket.shutdown would end TLS for reading too; the daemon takes the EOF).
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except (OSError, ValueError):
            pass

    def _receive(self) -> None:
        buf = self._pending
        out, err = sys.stdout.buffer, sys.stderr.buffer
        while True:
            if self.tty:
                if buf:
                    out.write(buf)
                    out.flush()
                    buf = b""
            else:
                while len(buf) >= 8:
                    stream, size = struct.unpack(">BxxxL", buf[:8])
                    if len(buf) < 8 + size:
                        break
                    target = err if stream == 2 else out
                    target.write(buf[8:8 + size])
                    target.flush()
                    buf = buf[8 + size:]
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk

    @staticmethod
    def _raw_terminal():
        if not sys.stdin.isatty():
            return None
        import termios
        import tty
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setraw(fd, termios.TCSANOW)      # TCSAFLUSH would drop input typed ahead
        return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def resize_to_terminal(client, cid: str) -> None:
    """Tell the daemon our terminal's size, as the docker CLI does right after start."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return
    client.request("POST", f"/containers/{quote(cid)}/resize", {"h": size.lines, "w": size.columns}).read()


def follow_window_changes(client_factory, cid: str):
    """While attached to a TTY, pass each change of our terminal's size on (SIGWINCH → resize), as
    the docker CLI does. Returns the function that stops it."""
    import signal

    def on_winch(_signum, _frame):      # a client of its own: the handler may land mid-request
        client = client_factory()
        try:
            resize_to_terminal(client, cid)
        except (APIError, CannotConnect, ProtocolError, OSError):
            pass                        # the container has just exited: the lost resize matters to no one
        finally:
            client.close()

    previous = signal.signal(signal.SIGWINCH, on_winch)
    return lambda: signal.signal(signal.SIGWINCH, previous)


def wait_request(client_factory, cid: str, condition: str):
    """Ask for the exit code before starting, so a fast exit cannot be missed. Returns a callable that
    blocks for the code."""
    waiter = client_factory()
    resp = waiter.request("POST", f"/containers/{quote(cid)}/wait", {"condition": condition})

    def code() -> int:
        try:
            return int(json.loads(resp.read())["StatusCode"])
        finally:
            waiter.close()
    return code
