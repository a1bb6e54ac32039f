"""Container endpoints. Listing reads the containers projection; lifecycle arrives with the runtime."""
from __future__ import annotations

import json
import os
import re
import select
import threading
import time
import weakref
from json.encoder import encode_basestring_ascii

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, Timestamp, load_query
from app.errors import Conflict, InvalidParameter, NotFound, NotImplemented_
from app.common.filters import labels_match
from app.common.fsutil import dir_size as _dir_size
from app.common.humanize import human_duration

bp = Blueprint("containers", __name__)

LIST_FILTER_KEYS = frozenset({"id", "name", "label", "status", "exited", "ancestor", "before", "since",
                              "volume", "network", "health", "isolation", "publish", "expose", "is-task"})
STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")   # moby's order
HEALTHS = ("none", "starting", "healthy", "unhealthy")
RUNNING = frozenset({"running", "paused", "restarting"})   # moby's State.Running is true in all three
# Only what a summary needs: the config/host_config JSON blobs stay on disk, and the covering index
# containers_list (projection v5) answers this without reading the table rows at all.
LIST_SQL = ("SELECT id, name, image, image_id, created_nano, state, exit_code, started_nano, finished_nano,"
            " labels, command, network_mode FROM containers ORDER BY created_nano DESC")
_PORT_FILTER = re.compile(r"^\d+(-\d+)?(/[a-z]+)?$")
_str = encode_basestring_ascii        # C-speed JSON string literal, quotes included
# store → (last_seq, summaries): see _summaries
_rendered: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ListQuery(Schema):
    all = DockerBool(load_default=False)
    limit = fields.String(load_default="")           # parsed in list_containers, with moby's message
    size = DockerBool(load_default=False)
    filters = Filters(LIST_FILTER_KEYS, load_default=dict)


def status_text(state: str, exit_code: int, started_nano: int, finished_nano: int, now_ns: int) -> str:
    """moby's container State.String()."""
    if state == "running":
        return "Up " + human_duration((now_ns - started_nano) / 1e9)
    if state == "paused":
        return "Up " + human_duration((now_ns - started_nano) / 1e9) + " (Paused)"
    if state == "exited":
        return f"Exited ({exit_code}) {human_duration((now_ns - finished_nano) / 1e9)} ago"
    if state == "restarting":
        return f"Restarting ({exit_code}) {human_duration((now_ns - finished_nano) / 1e9)} ago"
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    return "Created" if not started_nano else ""


def _summaries(engine) -> list[tuple]:
    """Every container, newest first: (id, name, image_id, created_nano, state, exit_code, started_nano,
    finished_nano, labels JSON, head, middle, tail), the summary's JSON pre-rendered around the parts a
    request adds (SizeRw/SizeRootFs after head, Status after middle).

    Rendered once per projection change: only projectors write these tables and every append moves
    store.last_seq, which is read before the query, so a cached list is never older than its seq.
    This is most of the cost of a listing (bench/containers.py (e)); the JSON is written by hand because
    one format per container is several times faster than dicts through json.dumps."""
    store = engine.store
    seq = store.last_seq
    cached = _rendered.get(store)
    if cached is not None and cached[0] == seq:
        return cached[1]
    cur = store.reader().cursor()
    cur.row_factory = None                      # plain tuples: no sqlite3.Row per container
    refreshed: dict[str, str] = {}              # image reference → the image ID it names now ("" if none)
    out = []
    for cid, name, image, image_id, created, state, code, started, finished, labels, command, mode in \
            cur.execute(LIST_SQL).fetchall():
        if image != image_id and image_id:
            # moby's refreshImage: a reference that no longer names the container's image shows the ID
            if image not in refreshed:
                try:
                    refreshed[image] = engine.images.resolve(image)[0]["id"]
                except (NotFound, InvalidParameter):
                    refreshed[image] = ""
            if refreshed[image] != image_id:
                image = image_id
        out.append((
            cid, name, image_id, created, state, code, started, finished, labels,
            f'{{"Id":{_str(cid)},"Names":[{_str("/" + name)}],"Image":{_str(image)},"ImageID":{_str(image_id)},'
            f'"Command":{_str(command)},"Created":{created // 1_000_000_000},"Ports":[],',
            f'"Labels":{labels},"State":"{state}","Status":"',      # labels are stored as JSON text
            f'","HostConfig":{{"NetworkMode":{_str(mode)}}},"NetworkSettings":{{"Networks":{{}}}},"Mounts":[]}}'))
    _rendered[store] = (seq, out)
    return out


def _name_patterns(values: set[str]) -> list[tuple[str, re.Pattern | None]]:
    out = []
    for value in sorted(values):
        try:
            out.append((value, re.compile(value)))
        except re.error:
            out.append((value, None))       # moby skips a value that is not a valid regexp
    return out


def _name_matches(patterns: list[tuple[str, re.Pattern | None]], name: str) -> bool:
    """filters.Match on "/name" and "name": an exact value, else an unanchored regular expression."""
    slashed = "/" + name
    for value, rx in patterns:
        if value in (name, slashed) or rx is not None and (rx.search(name) or rx.search(slashed)):
            return True
    return False


def _bool_filter(f: dict, key: str) -> bool | None:
    """filters.GetBoolOrDefault: 1/true or 0/false, not both; None when the key is absent."""
    if key not in f:
        return None
    values = f[key]
    yes, no = bool(values & {"1", "true"}), bool(values & {"0", "false"})
    if yes == no:
        raise InvalidParameter(f"invalid filter '{key}=[{' '.join(sorted(values))}]'")
    return yes


def _created_of(rows: list[tuple], value: str) -> int:
    """before/since: a full container ID or a name (moby's idOrNameFilter; no ID prefixes)."""
    name = value[1:] if value.startswith("/") else value
    for row in rows:
        if row[0] == value or row[1] == name:
            return row[3]
    raise NotFound(f"No such container: {value}")


def _ancestor_ids(engine, refs: set[str]) -> set[str]:
    """Each image the references name, plus every image built on it (moby walks the children).
    An unknown reference names nothing: moby only logs it, so the result may be empty."""
    out: set[str] = set()
    for ref in refs:
        try:
            row, _ = engine.images.resolve(ref)
        except (NotFound, InvalidParameter):
            continue
        out.update(r[0] for r in engine.store.query(
            "WITH RECURSIVE d(id) AS (SELECT ? UNION SELECT images.id FROM images JOIN d ON images.parent = d.id)"
            " SELECT id FROM d", (row["id"],)))
    return out


def _selector(rows: list[tuple], engine, q: dict):
    """moby's foldFilter + includeContainerInList as one predicate over a summary row, or None when the
    filters rule out every container. Values are validated in moby's order, so the first error is moby's."""
    f = q["filters"]
    codes = set()
    for value in sorted(f.get("exited", ())):
        if not re.fullmatch(r"[+-]?\d+", value):
            raise InvalidParameter(f"invalid filter 'exited={value}': strconv.Atoi: parsing {json.dumps(value)}: "
                                   "invalid syntax")
        codes.add(int(value))
    for value in sorted(f.get("status", ())):
        if value not in STATUSES:
            raise InvalidParameter(f"invalid filter 'status={value}': invalid value for state ({value}): must be "
                                   f"one of {', '.join(STATUSES)}")
    is_task = _bool_filter(f, "is-task")
    for value in sorted(f.get("health", ())):
        if value not in HEALTHS:
            raise InvalidParameter(f"invalid filter 'health={value}': invalid value for health ({value}): must be "
                                   f"one of {', '.join(HEALTHS)}")
    # several values: moby keeps the last one it walks (map order); sorted, the last one here
    before = [_created_of(rows, v) for v in sorted(f.get("before", ()))][-1:]
    since = [_created_of(rows, v) for v in sorted(f.get("since", ()))][-1:]
    ancestors = _ancestor_ids(engine, f["ancestor"]) if "ancestor" in f else None
    for key in ("publish", "expose"):
        for value in sorted(f.get(key, ())):
            if ":" in value:
                raise InvalidParameter(f"filter for '{key}' should not contain ':': {value}")
            if not _PORT_FILTER.match(value):
                raise InvalidParameter(f"error while looking up for {key} {value}: invalid port '{value}'")
    # No container is a swarm task, has a healthcheck, mounts, networks or ports yet.
    if (is_task or ("health" in f and "none" not in f["health"]) or "volume" in f or "network" in f
            or "publish" in f or "expose" in f or ancestors == set()):
        return None
    ids = None
    if "id" in f:   # each value names the one container whose ID it prefixes; none if ambiguous or unknown
        ids = set()
        for value in f["id"]:
            found = [row[0] for row in rows if row[0].startswith(value)] if value else []
            if len(found) == 1:
                ids.add(found[0])
    running_only = not (q["all"] or "status" in f or q["limit"] > 0)     # a status filter or a limit: all
    states = f.get("status")
    names, labels = _name_patterns(f["name"]) if "name" in f else None, f.get("label")
    before, since = before[0] if before else None, since[0] if since else None

    def select(row) -> bool:
        cid, name, image_id, created, state, code, started = row[:7]
        if running_only and state not in RUNNING or states is not None and state not in states:
            return False
        if codes and (state in RUNNING or not started or code not in codes):
            return False
        if ids is not None and cid not in ids or ancestors is not None and image_id not in ancestors:
            return False
        if before is not None and created >= before or since is not None and created <= since:
            return False
        if names is not None and not _name_matches(names, name):
            return False
        return labels is None or labels_match(labels, json.loads(row[8]))

    return select


@bp.get("/containers/json")
def list_containers():
    q = load_query(ListQuery(), request.args)
    if not re.fullmatch(r"(?:[+-]?\d+)?", q["limit"]):
        raise InvalidParameter(f"strconv.Atoi: parsing {json.dumps(q['limit'])}: invalid syntax")
    q["limit"] = int(q["limit"] or 0)
    engine = current_engine()
    rows = _summaries(engine)
    select = _selector(rows, engine, q)
    if select is None:
        return Response("[]\n", mimetype="application/json")
    image_sizes = {}
    if q["size"]:
        image_sizes = {r[0]: r[1] for r in engine.store.query("SELECT id, size FROM images")}
    limit = q["limit"]
    now = time.time_ns()
    parts = []
    for row in rows:
        if not select(row):
            continue
        cid, _, image_id, _, state, code, started, finished, _, head, middle, tail = row
        sizes = ""
        if q["size"]:   # moby's GetContainerLayerSize; both fields are omitempty
            size_rw = _dir_size(os.path.join(engine.containers.bundle(cid), "upper"))
            size_root = image_sizes[image_id] + size_rw if image_id in image_sizes else 0
            sizes = (f'"SizeRw":{size_rw},' if size_rw else "") + (f'"SizeRootFs":{size_root},' if size_root else "")
        parts.append(head + sizes + middle + status_text(state, code, started, finished, now) + tail)
        if 0 < limit <= len(parts):
            break
    return Response("[" + ",".join(parts) + "]\n", mimetype="application/json")


# ------------------------------------------------------------------------------------------ lifecycle

def _containers():
    return current_engine().containers


@bp.post("/containers/create")
def create_container():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a container config object is required")
    name = request.args.get("name") or None
    cid = _containers().create(body, name)
    return jsonify({"Id": cid, "Warnings": []}), 201


@bp.post("/containers/<ref>/start")
def start_container(ref):
    _containers().start(ref)
    return Response(status=204)


class StopQuery(Schema):
    t = fields.Integer(load_default=None)
    signal = fields.String(load_default=None)


@bp.post("/containers/<ref>/stop")
def stop_container(ref):
    q = load_query(StopQuery(), request.args)
    _containers().stop(ref, q["t"], q["signal"])
    return Response(status=204)


@bp.post("/containers/<ref>/kill")
def kill_container(ref):
    _containers().kill(ref, request.args.get("signal") or "KILL")
    return Response(status=204)


@bp.post("/containers/<ref>/wait")
def wait_container(ref):
    containers = _containers()         # captured: the body runs after the request context is gone
    condition = request.args.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f'invalid condition: "{condition}"')
    row = containers.resolve(ref)
    cid = row["id"]
    after_seq = current_engine().store.last_seq
    sock = request.environ.get("berth.socket")      # to notice a client that stopped waiting

    def body():
        yield b""   # the head goes out now: `docker run` calls /start only after seeing it
        code = containers.wait_condition(cid, condition, after_seq, lambda: _peer_hung_up(sock))
        if code is None:
            return                  # daemon shutdown
        yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Response(body(), mimetype="application/json")


class RemoveQuery(Schema):
    force = DockerBool(load_default=False)
    v = DockerBool(load_default=False)
    link = DockerBool(load_default=False)


@bp.delete("/containers/<ref>")
def remove_container(ref):
    q = load_query(RemoveQuery(), request.args)
    _containers().remove(ref, q["force"])
    return Response(status=204)


def _rfc3339(ns: int) -> str:
    if not ns:
        return "0001-01-01T00:00:00Z"
    from app.runtime.logs import rfc3339_nano_utc
    return rfc3339_nano_utc(ns)


@bp.get("/containers/<ref>/json")
def inspect_container(ref):
    containers = _containers()
    row = containers.resolve(ref)
    config, host_config = json.loads(row["config"]), json.loads(row["host_config"])
    images = current_engine().images
    try:
        image_cfg = images.config(images.resolve(row["image_id"])[0]).get("config") or {}
    except NotFound:
        image_cfg = {}
    from app.runtime.ocispec import command_of
    args = command_of(image_cfg, config)
    state = row["state"]
    bundle = containers.bundle(row["id"])
    merged = {**image_cfg, **{k: v for k, v in config.items() if v not in (None, "", [], {})}}
    merged.update({"Image": row["image"], "Labels": json.loads(row["labels"]),
                   "Hostname": config.get("Hostname") or row["id"][:12], "Tty": bool(config.get("Tty")),
                   "OpenStdin": bool(config.get("OpenStdin")), "Cmd": config.get("Cmd") or image_cfg.get("Cmd"),
                   "Entrypoint": config.get("Entrypoint") or image_cfg.get("Entrypoint")})
    return jsonify({
        "Id": row["id"], "Created": _rfc3339(row["created_nano"]), "Path": args[0], "Args": args[1:],
        "State": {"Status": state, "Running": state in ("running", "paused"), "Paused": state == "paused",
                  "Restarting": state == "restarting", "OOMKilled": bool(row["oom_killed"]), "Dead": state == "dead",
                  "Pid": row["pid"] if state in ("running", "paused") else 0, "ExitCode": row["exit_code"],
                  "Error": row["error"], "StartedAt": _rfc3339(row["started_nano"]),
                  "FinishedAt": _rfc3339(row["finished_nano"])},
        "Image": row["image_id"], "ResolvConfPath": os.path.join(bundle, "resolv.conf"),
        "HostnamePath": os.path.join(bundle, "hostname"), "HostsPath": os.path.join(bundle, "hosts"),
        "LogPath": os.path.join(bundle, "userdata", "ctr.log"), "Name": "/" + row["name"],
        "RestartCount": row["restart_count"], "Driver": "overlay2", "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": {"NetworkMode": "default", "LogConfig": {"Type": "json-file", "Config": {}},
                       "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
                       "Binds": None, "PortBindings": {}, **host_config},
        "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": os.path.join(bundle, "upper"),
                                                     "WorkDir": os.path.join(bundle, "work"),
                                                     "MergedDir": os.path.join(bundle, "rootfs")}},
        "Mounts": [], "Config": merged,
        "NetworkSettings": {"Networks": {}, "Ports": {}, "IPAddress": "", "Gateway": "", "MacAddress": ""},
    })


class LogsQuery(Schema):
    stdout = DockerBool(load_default=False)
    stderr = DockerBool(load_default=False)
    follow = DockerBool(load_default=False)
    timestamps = DockerBool(load_default=False)
    since = Timestamp(load_default=None)
    until = Timestamp(load_default=None)
    tail = fields.String(load_default="all")


@bp.get("/containers/<ref>/logs")
def container_logs(ref):
    from app.runtime.logs import follow, messages, render, select
    q = load_query(LogsQuery(), request.args)
    if not q["stdout"] and not q["stderr"]:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tail = -1 if q["tail"] in ("all", "", None) else (int(q["tail"]) if q["tail"].lstrip("-").isdigit() else -1)
    containers = _containers()
    row = containers.resolve(ref)
    cid = row["id"]
    tty = bool(json.loads(row["config"]).get("Tty"))
    streams = tuple(s for s in ("stdout", "stderr") if q[s])
    path = containers.monitor.files(cid, containers.bundle(cid)).log

    def body():
        yield b""
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return
        with fh:
            for msg in select(messages(fh), q["since"] or 0, q["until"] or 0, tail, streams):
                yield render(msg, q["timestamps"], tty)
            if q["follow"]:
                yield from follow(fh, lambda: containers.is_running(cid), streams, q["since"] or 0,
                                  q["until"] or 0, q["timestamps"], tty)

    media = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    return Response(body(), mimetype=media)


@bp.post("/containers/<ref>/pause")
def pause_container(ref):
    _containers().pause(ref)
    return Response(status=204)


@bp.post("/containers/<ref>/unpause")
def unpause_container(ref):
    _containers().unpause(ref)
    return Response(status=204)


@bp.post("/containers/<ref>/rename")
def rename_container(ref):
    _containers().rename(ref, request.args.get("name", ""))
    return Response(status=204)


@bp.post("/containers/<ref>/restart")
def restart_container(ref):
    q = load_query(StopQuery(), request.args)
    _containers().restart(ref, q["t"])
    return Response(status=204)


@bp.get("/containers/<ref>/top")
def top_container(ref):
    return jsonify(_containers().top(ref, request.args.get("ps_args") or "-ef"))


@bp.get("/containers/<ref>/changes")
def container_changes(ref):
    return jsonify(_containers().changes(ref) or None)


@bp.get("/containers/<ref>/export")
def export_container(ref):
    return Response(_containers().export(ref), mimetype="application/x-tar")


# ------------------------------------------------------------------------------------------ attach

HIJACK_HEAD_GRACE = 0.05


class AttachQuery(Schema):
    stream = DockerBool(load_default=False)
    stdin = DockerBool(load_default=False)
    stdout = DockerBool(load_default=False)
    stderr = DockerBool(load_default=False)
    logs = DockerBool(load_default=False)
    detachKeys = fields.String(load_default=None)


def _peer_hung_up(sock, half_close_counts: bool = True) -> bool:
    """The client went away. On a Unix socket a close shows as POLLHUP; on TCP only as POLLRDHUP,
    which a half-close (stdin EOF on an attach) also raises, so that counts only where asked."""
    if sock is None:
        return False
    mask = select.POLLHUP | (select.POLLRDHUP if half_close_counts else 0)
    poller = select.poll()
    poller.register(sock, mask)
    return any(ev & mask for _, ev in poller.poll(0))


@bp.post("/containers/<ref>/attach")
def attach_container(ref):
    """Hijacked attach: `101 UPGRADED` when the client asked to upgrade (docker CLI, docker-py), a raw
    200 stream otherwise; then the connection carries stdin one way and output the other."""
    from app.runtime.attach import parse_detach_keys, relay
    from app.runtime.logs import follow, messages, render, select as select_logs
    q = load_query(AttachQuery(), request.args)
    containers = _containers()
    row = containers.resolve(ref)
    if row["state"] == "paused":
        raise Conflict(f"container {ref} is paused, unpause the container before attach.")
    if row["state"] == "restarting":
        raise Conflict(f"container {ref} is restarting, wait until the container is running.")
    keys = parse_detach_keys(q["detachKeys"])
    hijack = request.environ.get("berth.hijack")
    if hijack is None:
        raise NotImplemented_("attach needs berth's HTTP server (a connection that can be taken over)")
    cid = row["id"]
    config = json.loads(row["config"])
    tty = bool(config.get("Tty"))
    multiplexed = not tty and _version_at_least(request.environ.get("berth.api_version", "1.45"), (1, 42))
    media = "application/vnd.docker.multiplexed-stream" if multiplexed else "application/vnd.docker.raw-stream"
    if "upgrade" in request.headers.get("Connection", "").lower() or request.headers.get("Upgrade"):
        sock, reader = hijack("101 UPGRADED", [("Content-Type", media), ("Connection", "Upgrade"),
                                                ("Upgrade", "tcp")])
    else:
        sock, reader = hijack("200 OK", [("Content-Type", media)])
    streams = tuple(s for s in ("stdout", "stderr") if q[s])
    log_path = containers.monitor.files(cid, containers.bundle(cid)).log
    fh = open(log_path, "rb") if q["logs"] and os.path.exists(log_path) else None
    try:
        if fh and streams:
            history = b"".join(render(msg, False, tty) for msg in select_logs(messages(fh), 0, 0, -1, streams))
            if history:
                # docker-py reads the 101 head through a buffered reader and then reads the raw socket:
                # bytes that arrive with the head are lost to it. Let the head go out on its own first.
                time.sleep(HIJACK_HEAD_GRACE)
                sock.sendall(history)
        if q["stream"]:
            containers.record_attach(cid, "attach")
            conn = containers.attach_connection(cid, lambda: _peer_hung_up(sock, not q["stdin"]))
            if conn is not None:
                detached = threading.Event()
                output = None
                if q["logs"]:     # history came from the log: follow the same file on, gap- and overlap-free
                    fh = fh or open(log_path, "rb")
                    output = follow(fh, lambda: not detached.is_set() and not containers.closing.is_set()
                                    and containers.is_running(cid), streams, tty=tty)
                was_detached = relay(conn, sock, reader, tty=tty, stdout=q["stdout"], stderr=q["stderr"],
                                     stdin=q["stdin"], stdin_once=bool(config.get("StdinOnce")),
                                     detach_keys=keys, output=output, detached=detached)
                if was_detached:
                    containers.record_attach(cid, "detach")
    except OSError:
        pass                                  # the client went away
    finally:
        if fh:
            fh.close()
    return Response(b"")                      # ignored: the connection was taken over


def _version_at_least(version: str, minimum: tuple[int, int]) -> bool:
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0)) >= minimum


class ResizeQuery(Schema):
    h = fields.Integer(load_default=0)
    w = fields.Integer(load_default=0)


@bp.post("/containers/<ref>/resize")
def resize_container(ref):
    q = load_query(ResizeQuery(), request.args)
    if q["h"] < 0 or q["w"] < 0:
        raise InvalidParameter("invalid terminal size: height and width must be positive")
    _containers().resize(ref, q["h"], q["w"])
    return Response(status=200)


class PruneQuery(Schema):
    filters = Filters(frozenset({"until", "label", "label!"}), load_default=dict)


@bp.post("/containers/prune")
def prune_containers():
    from app.common.timeparse import TimeParseError, parse_timestamp
    f = load_query(PruneQuery(), request.args)["filters"]
    until = None
    for value in f.get("until", ()):
        try:
            until = parse_timestamp(value)
        except TimeParseError as err:
            raise InvalidParameter(str(err)) from err
    return jsonify(_containers().prune(until, set(f.get("label", ())), set(f.get("label!", ()))))
