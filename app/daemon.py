"""`python cli.py daemon`: run berth in the foreground, like dockerd.

Start: lock the data root, open the store, bind every -H address, append a `daemon start` event, serve.
SIGTERM/SIGINT: stop accepting, end event streams, let in-flight requests finish, append `daemon
shutdown`, close the store, remove the sockets and the pidfile.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from app.config import Config
from app.engine import DataRootBusy, Engine
from app.server import BerthServer, ListenError, close_listeners, open_listeners
from app.tls import TLSConfigError

log = logging.getLogger("berth")


def _write_pidfile(path: str) -> None:
    try:
        with open(path) as fh:
            old = int(fh.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        old = 0
    if old and old != os.getpid():
        try:
            os.kill(old, 0)
        except ProcessLookupError:
            pass
        else:
            raise DataRootBusy(f"pid file found, ensure berth is not running or delete {path} (pid {old})")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def become_subreaper() -> bool:
    """PR_SET_CHILD_SUBREAPER: conmon double-forks away from us; as a subreaper the daemon inherits it
    and reaps it when it exits (Containers does), instead of relying on whatever PID 1 is to do so."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0     # 36 = PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _tls_context(config: Config):
    """The TLS context of tcp:// listeners (None: plain), after the refusal rules and loud warnings
    for plain TCP (app/tls.py)."""
    if not any(h.startswith(("tcp://", "fd://")) for h in config.hosts):
        return None
    from app.tls import CA_FILE, CERT_FILE, KEY_FILE, daemon_context, default_cert_path
    base = default_cert_path()
    context, warnings = daemon_context(
        tls=config.tls, tlsverify=config.tlsverify, hosts=config.hosts,
        cacert=config.tlscacert or os.path.join(base, CA_FILE), cert=config.tlscert or os.path.join(base, CERT_FILE),
        key=config.tlskey or os.path.join(base, KEY_FILE))
    for text in warnings:
        log.warning("%s", text)
    return context


def run(config: Config) -> int:
    logging.basicConfig(level=logging.DEBUG if config.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    become_subreaper()
    # Handlers first: a SIGTERM that arrives while we start is never a silent death. Before the
    # listeners open it ends the start; after, it is a graceful shutdown (clients are connected).
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        engine = Engine(config)
    except DataRootBusy as err:
        print(f"berth daemon: {err}", file=sys.stderr)
        return 1
    if stop.is_set():
        engine.close()
        log.info("berth daemon stopped before it served")
        return 0
    try:
        engine.start()          # the boot phase: reconcile, then background work (app/engine.py)
    except Exception as err:  # noqa: BLE001 - a daemon that cannot boot says why and exits
        log.exception("boot failed")
        engine.close()
        print(f"berth daemon: boot failed: {err}", file=sys.stderr)
        return 1
    try:
        ssl_context = _tls_context(config)
        listeners = open_listeners(config.hosts, ssl_context=ssl_context, socket_group=config.socket_group)
    except (ListenError, TLSConfigError, OSError) as err:
        engine.close()
        print(f"berth daemon: {err}", file=sys.stderr)
        return 1
    try:
        if config.pidfile:
            _write_pidfile(config.pidfile)
    except (DataRootBusy, OSError) as err:
        close_listeners(listeners)
        engine.close()
        print(f"berth daemon: {err}", file=sys.stderr)
        return 1

    from app import create_app
    flask_app = create_app(config, engine)
    engine.daemon_event("start")

    from app.streams import StreamRegistry
    streams = StreamRegistry(config.max_streams)    # one bound for every listener
    engine.streams = streams                        # GET /info shows the counts
    servers = [BerthServer(listener, flask_app, config.threads, streams, config.max_connections,
                           config.head_timeout, config.idle_timeout) for listener in listeners]
    engine.servers = servers
    threads = []
    for server in servers:
        server.prepare()
        t = threading.Thread(target=server.serve, name=f"serve {server.listener.url}", daemon=True)
        t.start()
        threads.append(t)
        log.info("API listen on %s", server.listener.url)

    log.info("berth daemon ready (data root %s, pid %d)", engine.data_root, os.getpid())
    while not stop.wait(1.0):
        pass

    # Streams (/events) see the flag and end; then servers stop accepting and drain in-flight requests.
    engine.begin_shutdown()
    streams.close()
    stoppers = [threading.Thread(target=s.stop) for s in servers]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()
    engine.daemon_event("shutdown")
    engine.close()
    close_listeners(listeners)
    if config.pidfile:
        try:
            os.unlink(config.pidfile)
        except FileNotFoundError:
            pass
    log.info("berth daemon stopped")
    return 0
