"""GET /containers/json (`docker ps`): moby's filters over the containers projection, rendered from
summaries cached per event-log position (bench/containers.py (e))."""
from __future__ import annotations

import json
import os
import re
import time
import weakref
from json.encoder import encode_basestring_ascii

from flask import Blueprint, Response, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, load_query
from app.common.filters import labels_match
from app.common.fsutil import dir_size as _dir_size
from app.common.humanize import human_duration
from app.errors import InvalidParameter, NotFound
from app.projections import containers as container_views, images as image_views, volumes as volume_views
from app.runtime.volumes.mounts import inspect_view

bp = Blueprint("container_list", __name__)

LIST_FILTER_KEYS = frozenset({"id", "name", "label", "status", "exited", "ancestor", "before", "since",
                              "volume", "network", "health", "isolation", "publish", "expose", "is-task"})
STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")   # moby's order
HEALTHS = ("none", "starting", "healthy", "unhealthy")
RUNNING = frozenset({"running", "paused", "restarting"})   # moby's State.Running is true in all three
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
    refreshed: dict[str, str] = {}              # image reference → the image ID it names now ("" if none)
    net_views = engine.networks.list_views()    # id → (Ports JSON, Networks JSON)
    out = []
    points = volume_views.all_points(store)         # Mounts, as moby's types.MountPoint
    for cid, name, image, image_id, created, state, code, started, finished, labels, command, mode in \
            container_views.summaries(store):
        mounts = json.dumps([inspect_view(p) for p in points.get(cid, ()) if p["Spec"] != "tmpfs"])
        if image != image_id and image_id:
            # moby's refreshImage: a reference that no longer names the container's image shows the ID
            if image not in refreshed:
                try:
                    refreshed[image] = engine.images.resolve(image)[0].id
                except (NotFound, InvalidParameter):
                    refreshed[image] = ""
            if refreshed[image] != image_id:
                image = image_id
        out.append((
            cid, name, image_id, created, state, code, started, finished, labels,
            f'{{"Id":{_str(cid)},"Names":[{_str("/" + name)}],"Image":{_str(image)},"ImageID":{_str(image_id)},'
            f'"Command":{_str(command)},"Created":{created // 1_000_000_000},'
            f'"Ports":{net_views.get(cid, ("[]", "{}"))[0]},',
            f'"Labels":{labels},"State":"{state}","Status":"',      # labels are stored as JSON text
            f'","HostConfig":{{"NetworkMode":{_str(mode)}}},'
            f'"NetworkSettings":{{"Networks":{net_views.get(cid, ("[]", "{}"))[1]}}},"Mounts":{mounts}}}'))
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
        out.update(image_views.descendants(engine.store, row.id))
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
    # No container is a swarm task or has a healthcheck yet.
    if is_task or ("health" in f and "none" not in f["health"]) or ancestors == set():
        return None
    net_ok = _network_filter(engine, f)
    ids = None
    if "id" in f:   # each value names the one container whose ID it prefixes; none if ambiguous or unknown
        ids = set()
        for value in f["id"]:
            found = [row[0] for row in rows if row[0].startswith(value)] if value else []
            if len(found) == 1:
                ids.add(found[0])
    if "volume" in f:       # a volume's name, or a mount's destination or bind source (moby's volume filter)
        with_volume = set().union(*(volume_views.containers_with_mount(engine.store, v) for v in f["volume"]))
        ids = with_volume if ids is None else ids & with_volume
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
        if net_ok is not None and not net_ok(cid):
            return False
        return labels is None or labels_match(labels, json.loads(row[8]))

    return select


def _port_set(values: set[str]) -> set[tuple[int, str]]:
    out = set()
    for value in values:
        port, _, proto = value.partition("/")
        low, _, high = port.partition("-")
        for n in range(int(low), int(high or low) + 1):
            out.add((n, proto or "tcp"))
    return out


def _network_filter(engine, f: dict):
    """network= (name or ID), publish= (host ports), expose= (container ports): moby's filters."""
    if not {"network", "publish", "expose"} & set(f):
        return None
    facts = engine.networks.filter_facts()          # id → (network names and IDs, published, exposed)
    nets = f.get("network")
    publish = _port_set(f["publish"]) if "publish" in f else None
    expose = _port_set(f["expose"]) if "expose" in f else None

    def ok(cid: str) -> bool:
        names, published, exposed = facts.get(cid, (set(), set(), set()))
        if nets is not None and not any(v in names or any(n.startswith(v) and len(v) >= 1 and len(n) == 64
                                                           for n in names) for v in nets):
            return False
        if publish is not None and not publish & published:
            return False
        return expose is None or bool(expose & exposed)
    return ok


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
        image_sizes = image_views.image_sizes(engine.store)
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
