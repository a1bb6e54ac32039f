"""System endpoints: /_ping, /version, /info, /events."""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema

from app.api import current_engine
from app.api.params import Filters, Timestamp, load_query
from app.common.timeparse import rfc3339_nano
from app.errors import InvalidParameter
from app.events.filters import EVENT_FILTER_KEYS, EventFilter
from app.projections.containers import container_counts
from app.projections.images import image_count
from app.runtime.host import hostinfo
from app.streams import admit_stream, peer_hung_up
from app.version import API_VERSION, MIN_API_VERSION, VERSION

bp = Blueprint("system", __name__)

PING_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


@bp.route("/_ping", methods=["GET", "HEAD"])
def ping():
    resp = Response(b"OK", mimetype="text/plain")
    resp.headers.update(PING_HEADERS)
    return resp


def version_info() -> dict:
    python = platform_python()
    details = {
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": python, "Os": "linux", "Arch": hostinfo.go_arch(),
        "KernelVersion": hostinfo.kernel_version(), "BuildTime": "", "Experimental": "false",
    }
    return {
        "Platform": {"Name": "berth Engine"},
        "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
        "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": python, "Os": "linux", "Arch": hostinfo.go_arch(),
        "KernelVersion": hostinfo.kernel_version(), "BuildTime": "", "Experimental": False,
    }


def platform_python() -> str:
    """Where Docker reports its Go version, berth reports the Python running it."""
    return "python" + ".".join(str(n) for n in sys.version_info[:3])


@bp.get("/version")
def version():
    return jsonify(version_info())


def _security_options(config) -> list[str]:
    """As dockerd lists them: the seccomp profile containers get by default, no-new-privileges."""
    profile = config.seccomp_profile
    options = [] if profile == "unconfined" else [
        "name=seccomp,profile=" + ("builtin" if profile in (None, "builtin") else "custom")]
    return options + (["name=no-new-privileges"] if config.no_new_privileges else [])


@bp.get("/info")
def info():
    engine = current_engine()
    store = engine.store
    states = container_counts(store)
    total = sum(states.values())
    running = states.get("running", 0) + states.get("restarting", 0)
    paused = states.get("paused", 0)
    images = image_count(store)
    cgroup_v = hostinfo.cgroup_version()
    return jsonify({
        "ID": engine.id,
        "Containers": total, "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": total - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                         ["Using metacopy", "false"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": _ipv4_forwarding(), "BridgeNfIptables": True, "BridgeNfIp6tables": True,
        "Debug": engine.config.debug, "NFd": hostinfo.open_fds(), "OomKillDisable": False,
        "NGoroutines": threading.active_count(),
        "SystemTime": rfc3339_nano(time.time_ns(), utc=False),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_v,
        "NEventsListener": engine.event_listeners,
        "KernelVersion": hostinfo.kernel_version(), "OperatingSystem": hostinfo.operating_system(),
        "OSVersion": hostinfo.os_version(), "OSType": "linux", "Architecture": hostinfo.architecture(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": hostinfo.mem_total(),
        "GenericResources": None, "DockerRootDir": engine.data_root,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": VERSION,
        "Runtimes": {"runc": {"path": engine.config.runtime}}, "DefaultRuntime": "runc",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": _security_options(engine.config), "CDISpecDirs": [], "Warnings": [],
        "BerthServer": _server_counts(engine),
    })


def _server_counts(engine) -> dict:
    """berth's own key: how many streams and connections are open, against their bounds; threads and
    the event store's open reader connections (at most one per live thread plus the idle pool)."""
    streams = getattr(engine, "streams", None)
    servers = getattr(engine, "servers", [])
    return {"Streams": streams.active if streams else 0, "MaxStreams": streams.limit if streams else 0,
            "Connections": sum(getattr(s._connections, "open_connections", 0) for s in servers),
            "Threads": threading.active_count(), "StoreReaders": engine.store.open_readers}


def _ipv4_forwarding() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return False


# ------------------------------------------------------------------------------------------ /events

class EventsQuery(Schema):
    since = Timestamp(load_default=None)
    until = Timestamp(load_default=None)
    filters = Filters(EVENT_FILTER_KEYS, load_default=dict)


POLL_SECONDS = 0.5
BATCH = 500


@bp.get("/events")
def events():
    engine = current_engine()
    store = engine.store
    q = load_query(EventsQuery(), request.args)
    since, until = q["since"], q["until"]
    if since is not None and until is not None and since > until:
        raise InvalidParameter(f"since time ({_fmt(since)}) cannot be after until time ({_fmt(until)})")
    matcher = EventFilter(q["filters"])
    # Without since/until only new events are sent; either one replays the durable history first.
    if since is None and until is None:
        cursor = store.last_seq
    else:
        cursor = store.first_seq_at_or_after(since or 0) - 1
    sock = request.environ.get("berth.socket")
    # off the worker pool once the head is out (app/streams.py); None under the Flask test client
    admitted = admit_stream(request.environ, kind="events")
    client_gone = admitted.client_gone if admitted is not None else (lambda: peer_hung_up(sock))

    labels = engine.container_labels

    def wire(events):
        """The lines of the events Docker shows that pass the filters, with their containers' labels."""
        for ev in events:
            if ev.is_docker_visible:
                ev = labels.attach(ev)
                if matcher.matches(ev):
                    yield json.dumps(ev.to_docker(), separators=(",", ":")).encode() + b"\n"

    def stream():
        nonlocal cursor
        engine.listener_added()
        try:
            yield b""  # flush the head now: clients block until they see it
            while True:
                high = store.last_seq  # every seq up to here is committed and visible to the query below
                upto = None if until is None else store.first_seq_at_or_after(until + 1) - 1
                batch = store.read(after_seq=cursor, upto_seq=upto, types=matcher.sql_types,
                                   actions=matcher.sql_actions, limit=BATCH)
                if batch:
                    lines = list(wire(batch))
                    if lines:
                        yield b"".join(lines)
                    if len(batch) == BATCH:
                        cursor = batch[-1].seq
                        continue
                # Nothing else up to `high` matched the query: skip what it filtered out.
                cursor = max(cursor, high, batch[-1].seq if batch else 0)
                if until is not None and time.time_ns() > until:
                    # An append that stamped a time <= until may still be committing: wait it out,
                    # then read once more. Later appends are stamped after now, i.e. after until.
                    store.barrier()
                    upto = store.first_seq_at_or_after(until + 1) - 1
                    yield from wire(store.read(after_seq=cursor, upto_seq=upto, types=matcher.sql_types,
                                               actions=matcher.sql_actions, limit=1_000_000))
                    return
                if engine.shutting_down.is_set() or client_gone():
                    return
                wait = POLL_SECONDS if until is None else min(POLL_SECONDS, max(0.0, (until - time.time_ns()) / 1e9))
                store.wait_for_events(cursor, wait)
        finally:
            engine.listener_removed()

    return Response(stream(), mimetype="application/json")


def _fmt(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %z")
