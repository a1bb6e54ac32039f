"""The daemon process: listeners, locking, pidfile, graceful shutdown, kill -9, offline rebuild."""
import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import CLI, ROOT, Daemon, ping


def _history(daemon: Daemon) -> list[tuple[str, str]]:
    r = daemon.cli("events", "--since", "0", "--until", f"{time.time():.6f}", "--format", "{{.Type}} {{.Action}}",
                   check=True)
    return [tuple(line.split()) for line in r.stdout.splitlines()]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_socket_mode_pidfile_and_clean_shutdown(make_daemon):
    d = make_daemon().start()
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    with open(d.pidfile) as fh:
        assert int(fh.read()) == d.proc.pid
    assert d.stop() == 0
    assert not os.path.exists(d.sock) and not os.path.exists(d.pidfile)
    assert "received SIGTERM" in d.log()
    d.start()
    assert _history(d) == [("daemon", "start"), ("daemon", "shutdown"), ("daemon", "start")]
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(20) == 0


def test_second_daemon_on_same_data_root_refuses(make_daemon):
    first = make_daemon().start()
    second = make_daemon(data_root=first.data_root, subdir="second")
    second.start(wait=False)
    assert second.proc.wait(20) == 1
    assert f"data root {first.data_root} is in use by a running berth daemon (pid {first.proc.pid})" in second.log()
    assert not os.path.exists(second.sock)
    assert ping(first.sock)
    first.stop()


def test_socket_already_served_refuses_and_stale_socket_is_replaced(make_daemon, workdir):
    first = make_daemon().start()
    other = make_daemon(subdir="other")
    other.sock, other.host = first.sock, first.host
    other.start(wait=False)
    assert other.proc.wait(20) == 1
    assert "another daemon is serving it" in other.log()
    first.kill9()                                    # leaves a stale socket file behind
    assert os.path.exists(first.sock)
    first.start()                                    # … which the next start replaces
    assert ping(first.sock)
    first.stop()


@pytest.mark.parametrize("bad,message", [
    ("http://x", "invalid daemon address"),
    ("unix://relative.sock", "must be absolute"),
    ("tcp://127.0.0.1", "want tcp://HOST:PORT"),
    ("fd://", "socket activation"),
])
def test_invalid_host_is_refused(make_daemon, bad, message):
    d = make_daemon()
    d.start(hosts=[bad], wait=False)
    assert d.proc.wait(20) == 1
    assert message in d.log()
    assert not os.path.exists(d.pidfile) and not os.path.exists(d.sock)


def test_tcp_and_unix_listeners_together(make_daemon):
    import docker
    port = _free_port()
    d = make_daemon()
    d.start(hosts=[d.host, f"tcp://127.0.0.1:{port}"])
    for base_url in (d.host, f"tcp://127.0.0.1:{port}"):
        client = docker.APIClient(base_url=base_url, version="auto")
        assert client.version()["ApiVersion"] == "1.45"
        client.close()
    assert d.cli("version", host=f"tcp://127.0.0.1:{port}").returncode == 0
    d.stop()


def test_systemd_socket_activation_fd(make_daemon):
    d = make_daemon()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(d.sock)
    listener.listen(16)
    os.set_inheritable(listener.fileno(), True)
    # systemd passes the socket as fd 3 and LISTEN_PID names the daemon itself (exec keeps the pid).
    launcher = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
                "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); os.execv(sys.argv[2], sys.argv[2:])")
    d.start(pass_fds=[listener.fileno()], wait=False,
            cmd=[sys.executable, "-c", launcher, str(listener.fileno()), *d.command(hosts=["fd://"])])
    listener.close()
    d.wait_ready()
    assert d.cli("version", check=True).returncode == 0
    assert d.stop() == 0


def test_keep_alive_reuses_one_connection(daemon):
    class UnixConn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(daemon.sock)

    conn = UnixConn("localhost")
    seen = set()
    for path in ("/_ping", "/v1.45/version", "/v1.45/info", "/v1.45/containers/json", "/_ping"):
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and body
        assert resp.getheader("Connection", "").lower() != "close"
        seen.add(id(conn.sock))
    assert len(seen) == 1
    conn.close()


def test_graceful_shutdown_finishes_in_flight_request_and_ends_streams(make_daemon):
    d = make_daemon().start()
    stream = socket.socket(socket.AF_UNIX)
    stream.connect(d.sock)
    stream.sendall(b"GET /v1.45/events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stream.recv(4096).startswith(b"HTTP/1.1 200")    # head flushed at once, then idle
    inflight = socket.socket(socket.AF_UNIX)
    inflight.connect(d.sock)
    inflight.sendall(b"GET /v1.45/info HTTP/1.1\r\nHost: x\r\n")   # request not finished yet …
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    inflight.sendall(b"Connection: close\r\n\r\n")                # … and completed during shutdown
    data = b""
    while chunk := inflight.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"DockerRootDir"' in data
    stream.settimeout(15)
    rest = b""
    while chunk := stream.recv(65536):
        rest += chunk
    assert rest.endswith(b"0\r\n\r\n")                       # the event stream ended cleanly
    assert d.proc.wait(20) == 0
    d.start()
    assert ("daemon", "shutdown") in _history(d)
    d.stop()


def test_kill9_loses_no_acknowledged_event(make_daemon):
    d = make_daemon().start()
    d.kill9()
    d.start()
    d.kill9()
    d.start()
    assert _history(d) == [("daemon", "start")] * 3
    d.stop()


def test_kill9_of_an_appending_process_loses_no_acknowledged_append(workdir):
    """A writer prints each seq after append() returns; SIGKILL it mid-stream; every printed seq is there."""
    db = os.path.join(workdir, "kill.db")
    code = f"""
import sys
from app.events.store import EventStore
from app.events.model import NewEvent
from app.projections import all_projectors
s = EventStore({db!r}, all_projectors())
i = 0
while True:
    i += 1
    ev = s.append([NewEvent("volume", "create", f"v{{i}}", {{"driver": "local"}})])[0]
    sys.stdout.write(f"{{ev.seq}}\\n"); sys.stdout.flush()
"""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    acked = 0
    while acked < 300:
        acked = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from app.events.store import EventStore
    from app.projections import all_projectors
    store = EventStore(db, all_projectors())
    assert store.last_seq >= acked
    assert store.query("SELECT COUNT(*) FROM volumes")[0][0] == store.last_seq
    store.close()


def test_admin_rebuild_projections(make_daemon):
    d = make_daemon().start()
    run = lambda: subprocess.run([sys.executable, CLI, "admin", "rebuild-projections", "--data-root", d.data_root],
                                 capture_output=True, text=True, cwd=ROOT)
    r = run()
    assert r.returncode == 1 and "is in use by a running berth daemon" in r.stderr
    d.stop()
    r = run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Replayed 5 events into projections")   # daemon start, stop; 3 predefined networks
    r = subprocess.run([sys.executable, CLI, "admin", "rebuild-projections", "--data-root", d.base + "/none"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "no berth store" in r.stderr
