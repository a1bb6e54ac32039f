"""Attach helpers: detach-key parsing and matching across reads, stdcopy framing, the relay loop."""
import socket
import threading

import pytest

from app.errors import InvalidParameter
from app.common.detachkeys import DetachScanner, parse_detach_keys
from app.runtime.containers.attach import frame, relay


@pytest.mark.parametrize("spec,keys", [
    (None, b"\x10\x11"), ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-x,y", b"\x18y"), ("a,b,c", b"abc"),
    ("ctrl-@", b"\x00"), ("ctrl-[", b"\x1b"), ("ctrl-_", b"\x1f"), ("CTRL-A", b"\x01"),
])
def test_parse_detach_keys(spec, keys):
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-xx", "ab", "ctrl-1", ",", "ctrl-"])
def test_parse_detach_keys_rejects_docker_invalid_forms(spec):
    with pytest.raises(InvalidParameter, match=r"Invalid detach keys"):
        parse_detach_keys(spec)


def test_scanner_detaches_across_reads_and_keeps_user_bytes():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)          # a possible start is held back
    assert s.feed(b"\x11rest") == (b"", True)
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"\x10x") == (b"\x10x", False)         # a broken match is released
    assert s.feed(b"\x10\x10\x11") == (b"\x10", True)   # the second \x10 starts the real match
    s = DetachScanner(b"abc")
    assert s.feed(b"abab") == (b"ab", False)
    assert s.feed(b"c") == (b"", True)


def test_frame_is_stdcopy():
    assert frame(1, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(2, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"


def _pair_seqpacket():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def _relay_in_thread(**options):
    """relay() between a fake conmon and a fake client; returns (conmon end, client end, result, thread),
    result getting `detached` when relay returns."""
    conmon_ours, conmon_far = _pair_seqpacket()
    client_ours, client_far = socket.socketpair()
    result = {}
    options = {"stdout": True, "stderr": True, "stdin": True, "detach_keys": b"\x10\x11", **options}
    t = threading.Thread(target=lambda: result.update(
        detached=relay(conmon_ours, client_ours, client_ours.makefile("rb"), **options)))
    t.start()
    return conmon_far, client_far, result, t


def test_relay_frames_output_forwards_stdin_and_half_closes_for_stdin_once():
    conmon_far, client_far, result, t = _relay_in_thread(tty=False, stderr=False, stdin_once=True)
    client_far.sendall(b"input")
    assert conmon_far.recv(100) == b"input"
    client_far.shutdown(socket.SHUT_WR)                  # stdin EOF → conmon sees EOF (closes stdin)
    assert conmon_far.recv(100) == b""
    conmon_far.send(b"\x02out")                          # stdout packet
    conmon_far.send(b"\x03err")                          # stderr: not requested, dropped
    conmon_far.send(b"\x02more")
    conmon_far.close()                                   # the container exited
    t.join(5)
    data = b""
    while chunk := client_far.recv(100):
        data += chunk
    assert data == frame(1, b"out") + frame(1, b"more") and result == {"detached": False}


def test_relay_detach_keys_end_the_stream_without_eof_to_stdin():
    conmon_far, client_far, result, t = _relay_in_thread(tty=True, stdin_once=False)
    conmon_far.send(b"\x02prompt$ ")
    assert client_far.recv(100) == b"prompt$ "          # tty: raw bytes
    client_far.sendall(b"ls\x10\x11")
    assert conmon_far.recv(100) == b"ls"
    t.join(5)
    assert result == {"detached": True} and client_far.recv(100) == b""
    conmon_far.close()


def test_relay_without_tty_passes_detach_keys_through_as_data():
    """moby matches detach keys only on a TTY: binary stdin must reach the process intact."""
    conmon_far, client_far, result, t = _relay_in_thread(tty=False, stdin_once=True)
    client_far.sendall(b"a\x10\x11b")
    got = b""
    while len(got) < 4:
        got += conmon_far.recv(100)
    assert got == b"a\x10\x11b"
    client_far.shutdown(socket.SHUT_WR)
    assert conmon_far.recv(100) == b""                   # stdin EOF passed on
    conmon_far.close()
    t.join(5)
    assert result == {"detached": False}


def test_parse_detach_keys_rejects_characters_outside_a_byte():
    with pytest.raises(InvalidParameter):
        parse_detach_keys("€")


def test_scanner_finds_overlapping_matches():
    s = DetachScanner(b"aab")
    assert s.feed(b"aaab") == (b"a", True)
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"\x10\x10\x10") == (b"\x10\x10", False)
    assert s.feed(b"\x11") == (b"", True)


def test_hub_fans_out_and_only_stdin_eof_half_closes():
    from app.runtime.containers.attach import AttachHub
    ours, conmon = _pair_seqpacket()
    hub = AttachHub(ours, "t")
    a, b = hub.subscribe(), hub.subscribe()
    conmon.send(b"\x02one")
    assert a.recv() == b"\x02one" and b.recv() == b"\x02one"
    b.close()                                            # an output-only client leaves: nothing reaches conmon
    a.sendall(b"typed")
    assert conmon.recv(100) == b"typed"
    a.shutdown(socket.SHUT_WR)                           # the stdin client's EOF: conmon sees EOF once
    assert conmon.recv(100) == b""
    conmon.send(b"\x03two")                              # output still flows after stdin closed
    assert a.recv() == b"\x03two"
    late = hub.subscribe()
    conmon.close()                                       # container exited
    assert a.recv() == b"" and late.recv() == b"" and a.recv() == b""
    assert hub.closed.wait(2) and hub.subscribe().recv() == b""


def test_cli_knows_it_detached_when_the_daemon_ends_the_stream_at_once(monkeypatch):
    """The daemon ends the stream the moment the keys reach it; the CLI must already know they were
    its own, or it waits for an exit code that never comes (it did, about one run in five)."""
    import os
    import sys
    import time
    from app.cli.attach import AttachSession

    class SlowAfterSend(socket.socket):
        def sendall(self, data, *flags):
            super().sendall(data, *flags)
            time.sleep(0.2)                   # the daemon ends the stream meanwhile

    class FakeClient:
        def hijack(self, method, path, params):
            return SlowAfterSend(fileno=ours.detach()), b""

    ours, daemon = socket.socketpair()
    read_fd, write_fd = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_fd, "rb", buffering=0))

    def fake_daemon():
        daemon.recv(64)                       # the keys: end the stream straight away
        daemon.close()
    threading.Thread(target=fake_daemon, daemon=True).start()
    session = AttachSession(FakeClient(), "c", {"stdin", "stdout"}, tty=True)
    os.write(write_fd, b"\x10\x11")
    session.run()
    assert session.detached
    os.close(write_fd)
