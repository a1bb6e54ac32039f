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
    d.add_argument("--max-upload-size", type=_size, default=64 << 30, metavar="BYTES",
                   help="largest uncompressed archive load/import accepts, e.g. 64g; 0 = no bound (default 64g)")
    d.add_argument("--min-free-space", type=_size, default=1 << 30, metavar="BYTES",
                   help="free space uploads leave on the data root's file system, e.g. 1g; 0 = none (default 1g)")
    d.add_argument("--max-json-body", type=_size, default=16 << 20, metavar="BYTES",
                   help="largest JSON request body (container create …), e.g. 16m (default 16m)")
    d.add_argument("--max-streams", type=int, default=1024,
                   help="concurrent attach/wait/events/logs -f streams; beyond: 503 (default %(default)s)")
    d.add_argument("--max-connections", type=int, default=2048,
                   help="open connections per listener, streams aside; beyond: 503 (default %(default)s)")
    d.add_argument("--head-timeout", type=float, default=10.0,
                   help="seconds a client has to send a request head (default %(default)s)")
    d.add_argument("--idle-timeout", type=float, default=10.0,
                   help="seconds an idle keep-alive connection is kept (default %(default)s)")
    d.add_argument("-D", "--debug", action="store_true", help="debug logging")
    d.add_argument("-G", "--group", default="docker",
                   help="group of the unix socket (default %(default)s; kept as root's when it does not exist)")
    d.add_argument("--tls", nargs="?", const="true", default=None, metavar="BOOL",
                   help="serve tcp:// with TLS, without client certificates; --tls=false: plain TCP on purpose")
    d.add_argument("--tlsverify", nargs="?", const="true", default=None, metavar="BOOL",
                   help="serve tcp:// with mutual TLS: clients need a certificate signed by --tlscacert")
    d.add_argument("--tlscacert", help="trust client certificates signed only by this CA (default ca.pem in "
                                       "$DOCKER_CERT_PATH or ~/.docker)")
    d.add_argument("--tlscert", help="the daemon's TLS certificate (default cert.pem there)")
    d.add_argument("--tlskey", help="the daemon's TLS key (default key.pem there)")
    d.add_argument("--seccomp-profile", metavar="PATH",
                   help="default seccomp profile of containers: a JSON file, 'unconfined' or 'builtin' (Docker's)")
    d.add_argument("--no-new-privileges", action="store_true", help="set no-new-privileges for new containers")
    d.add_argument("--shutdown-stop", action="store_true",
                   help="stop the containers at a clean shutdown (default: they keep running)")
    d.add_argument("--restart-min-delay", type=float, default=0.0, metavar="SECONDS",
                   help="tests only: every restart policy delay is at least this long (default 0)")
    d.add_argument("-b", "--bridge", default="berth0",
                   help="the default bridge's interface name, also the tag of berth's iptables chains "
                        "(default %(default)s)")
    d.add_argument("--bip", default=None, metavar="CIDR", help="the default bridge's gateway address and prefix")
    d.add_argument("--host-gateway-ip", default=None, metavar="IP",
                   help="the address --add-host NAME:host-gateway maps to (default: the default bridge's gateway)")
    d.add_argument("--default-address-pool", dest="default_address_pools", action="append", default=[],
                   metavar="base=CIDR,size=N", help="where networks' subnets come from (repeatable)")
    d.add_argument("--iptables", nargs="?", const="true", default="true", metavar="BOOL",
                   help="write iptables rules (default true; false: no publishing, no masquerade)")
    d.add_argument("--icc", nargs="?", const="true", default="true", metavar="BOOL",
                   help="traffic between containers on the default bridge (default true)")
    d.set_defaults(func=cmd_daemon, needs_client=False)

    a = sub.add_parser("admin", help="offline maintenance of a data root (daemon stopped)")
    asub = a.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND", required=True)
    r = asub.add_parser("rebuild-projections", help="drop the read models and replay the event log into them")
    r.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="data root (default %(default)s)")
    r.set_defaults(func=cmd_rebuild, needs_client=False)
    c = asub.add_parser("check", help="compare the projections with a fresh replay of the log and with the host",
                        description="Compare three things: the projections, a fresh replay of the event log "
                                    "into a scratch database, and what runc, conmon, mounts, cgroups, bridges "
                                    "and iptables report. Prints every difference; exit status 1 if any. "
                                    "Read only; on a running daemon an operation in flight may show.")
    c.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="data root (default %(default)s)")
    c.add_argument("--cgroup-parent", default="berth", help="the daemon's --cgroup-parent (default %(default)s)")
    c.add_argument("--no-runtime", action="store_true", help="compare the projections with a replay only")
    c.set_defaults(func=cmd_check, needs_client=False)


def _size(text: str) -> int:
    """Bytes with an optional binary unit: 512, 10k, 64m, 2g, 1t (also kb/KiB spellings)."""
    import argparse
    import re
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size: {text!r}")
    return int(float(m.group(1)) * (1 << (10 * " kmgt".index(m.group(2).lower() or " "))))


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
    from app.tls import parse_bool
    try:
        tls = None if args.tls is None else parse_bool(args.tls)
        tlsverify = None if args.tlsverify is None else parse_bool(args.tlsverify)
    except ValueError as err:
        print(f"berth daemon: --tls/--tlsverify: {err}", file=sys.stderr)
        return 1
    try:
        iptables, icc = parse_bool(args.iptables), parse_bool(args.icc)
    except ValueError as err:
        print(f"berth daemon: --iptables/--icc: {err}", file=sys.stderr)
        return 1
    if len(args.bridge) > 15 or not args.bridge.replace("-", "").replace("_", "").replace(".", "").isalnum():
        print(f"berth daemon: --bridge {args.bridge!r}: an interface name of at most 15 characters", file=sys.stderr)
        return 1
    try:
        import ipaddress
        from app.runtime.network.ipam import parse_pool
        if args.bip:
            ipaddress.ip_interface(args.bip)
        if args.host_gateway_ip:
            ipaddress.ip_address(args.host_gateway_ip)
        for pool in args.default_address_pools:
            parse_pool(pool)
    except Exception as err:  # noqa: BLE001
        print(f"berth daemon: {err}", file=sys.stderr)
        return 1
    profile = args.seccomp_profile
    if profile not in (None, "", "builtin", "unconfined"):
        from app.errors import InvalidParameter
        from app.runtime.host.seccomp import parse_profile, render
        try:
            with open(profile) as fh:
                profile = fh.read()
            render(parse_profile(profile), [])
        except (OSError, InvalidParameter) as err:
            print(f"berth daemon: opening seccomp profile ({args.seccomp_profile}) failed: {err}", file=sys.stderr)
            return 1
    config = Config(data_root=args.data_root, hosts=args.daemon_hosts or [DEFAULT_HOST], pidfile=args.pidfile,
                    runtime=args.runtime, threads=args.threads, debug=args.debug,
                    cgroup_parent=args.cgroup_parent, socket_group=args.group, tls=tls, tlsverify=tlsverify,
                    tlscacert=args.tlscacert, tlscert=args.tlscert, tlskey=args.tlskey,
                    seccomp_profile=profile or None, no_new_privileges=args.no_new_privileges,
                    shutdown_stop=args.shutdown_stop, restart_min_delay=args.restart_min_delay,
                    max_upload_size=args.max_upload_size, min_free_space=args.min_free_space,
                    max_json_body=args.max_json_body,
                    max_streams=args.max_streams, max_connections=args.max_connections,
                    head_timeout=args.head_timeout, idle_timeout=args.idle_timeout,
                    bridge=args.bridge, bip=args.bip, default_address_pools=args.default_address_pools,
                    iptables=iptables, icc=icc, host_gateway_ip=args.host_gateway_ip)
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


def cmd_check(args) -> int:
    import os
    import sqlite3
    from app.projections import all_projectors
    from app.projections.check import replay_differences
    from app.runtime.check import RuntimeCheck
    path = os.path.join(args.data_root, "berth.db")
    if not os.path.exists(path):
        print(f"berth admin: no berth store in {args.data_root}", file=sys.stderr)
        return 1
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        count, differences = replay_differences(conn, all_projectors())
        if not args.no_runtime:
            differences += RuntimeCheck(conn, args.data_root, args.cgroup_parent).differences()
        conn.close()
    except sqlite3.Error as err:
        print(f"berth admin: reading {path}: {err}", file=sys.stderr)
        return 1
    for line in differences:
        print(line)
    what = "the projections and a fresh replay" + ("" if args.no_runtime else " and the host")
    if differences:
        print(f"{len(differences)} difference(s) between {what} ({count} events replayed)", file=sys.stderr)
        return 1
    print(f"No differences between {what} ({count} events replayed)")
    return 0
