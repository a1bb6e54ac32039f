"""Commands that act on the data root directly: `daemon` (run it) and `admin` (offline maintenance)."""
from __future__ import annotations

import sys
import time

from app.common.defaults import DEFAULT_DATA_ROOT, DEFAULT_HOST


def register(sub) -> None:
    d = sub.add_parser("daemon", help="run the berth daemon in the foreground",
                       description="Run the berth daemon in the foreground (like dockerd).")
    d.add_argument("-H", "--host", dest="daemon_hosts", action="append", metavar="ADDR",
                   help=f"listen on ADDR: unix:///path, tcp://HOST:PORT or fd:// (repeatable; default {DEFAULT_HOST})")
    d.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="where berth keeps its state (default %(default)s)")
    d.add_argument("-p", "--pidfile", default=None, help="write the daemon's pid to this file")
    d.add_argument("--runtime", default="runc", help="path of the OCI runtime binary (default %(default)s)")
    d.add_argument("--cgroup-parent", default="berth", help="parent cgroup of containers (default %(default)s)")
    d.add_argument("--threads", type=int, default=64, help="worker threads per listener (default %(default)s)")
    d.add_argument("--max-streams", type=int, default=1024,
                   help="concurrent attach/wait/events/logs -f streams; beyond: 503 (default %(default)s)")
    d.add_argument("--max-connections", type=int, default=2048,
                   help="open connections per listener, streams aside; beyond: 503 (default %(default)s)")
    d.add_argument("--head-timeout", type=float, default=10.0,
                   help="seconds a client has to send a request head (default %(default)s)")
    d.add_argument("--idle-timeout", type=float, default=10.0,
                   help="seconds an idle keep-alive connection is kept (default %(default)s)")
    d.add_argument("-D", "--debug", action="store_true", help="debug logging")
    d.set_defaults(func=cmd_daemon, needs_client=False)

    a = sub.add_parser("admin", help="offline maintenance of a data root (daemon stopped)")
    asub = a.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND", required=True)
    r = asub.add_parser("rebuild-projections", help="drop the read models and replay the event log into them")
    r.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="data root (default %(default)s)")
    r.set_defaults(func=cmd_rebuild, needs_client=False)


def cmd_daemon(args) -> int:
    from app.config import Config
    from app.daemon import run
    if args.threads < 1:
        print("berth daemon: --threads must be at least 1", file=sys.stderr)
        return 1
    if min(args.max_streams, args.max_connections) < 1 or min(args.head_timeout, args.idle_timeout) <= 0:
        print("berth daemon: --max-streams/--max-connections must be at least 1, timeouts positive",
              file=sys.stderr)
        return 1
    config = Config(data_root=args.data_root, hosts=args.daemon_hosts or [DEFAULT_HOST], pidfile=args.pidfile,
                    runtime=args.runtime, threads=args.threads, debug=args.debug,
                    cgroup_parent=args.cgroup_parent, max_streams=args.max_streams,
                    max_connections=args.max_connections, head_timeout=args.head_timeout,
                    idle_timeout=args.idle_timeout)
    return run(config)


def cmd_rebuild(args) -> int:
    import os
    from app.engine import DataRootBusy, lock_data_root
    from app.events.store import EventStore
    from app.projections import all_projectors, rebuild
    if not os.path.exists(os.path.join(args.data_root, "berth.db")):
        print(f"berth admin: no berth store in {args.data_root}", file=sys.stderr)
        return 1
    try:
        fd = lock_data_root(args.data_root)
    except DataRootBusy as err:
        print(f"berth admin: {err}", file=sys.stderr)
        return 1
    try:
        store = EventStore(os.path.join(args.data_root, "berth.db"), all_projectors())
        started = time.monotonic()
        count = rebuild(store)
        store.close()
        print(f"Replayed {count} events into projections in {time.monotonic() - started:.2f}s")
    finally:
        os.close(fd)
    return 0
