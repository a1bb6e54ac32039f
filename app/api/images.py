"""Image endpoints: import (POST /images/create?fromSrc=), list, inspect, history, tag, delete,
save (GET /images/get, /images/{name}/get) and load (POST /images/load)."""
from __future__ import annotations

import fnmatch
import json
import urllib.error
import urllib.request

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.api.params import DockerBool, Filters, load_query
from app.common.filters import labels_match
from app.common.reference import split_repo_tag
from app.errors import BerthError, InvalidParameter, NotImplemented_
from app.projections import images as image_views
from app.runtime.images import transfer as archive

bp = Blueprint("images", __name__)

LIST_FILTER_KEYS = frozenset({"dangling", "label", "before", "since", "reference", "until"})


def _images():
    return current_engine().images


def _upload():
    """The request body as a stream: straight from the socket when served by berth's own server."""
    fast = request.environ.get("berth.body")
    return fast() if fast else request.stream


def _jsonmessages(messages) -> Response:
    """A jsonmessage stream, chunked as moby's (docker-py decodes a multi-line answer only when chunked)."""
    lines = [json.dumps(m, separators=(",", ":")).encode() + b"\r\n" for m in messages]
    return Response(iter(lines), mimetype="application/json")


def _error_message(err: Exception) -> dict:
    """A failure inside a stream whose 200 is already decided, in moby's shape (streamformatter.FormatError):
    docker-py raises ImageLoadError on `errorDetail`, the docker CLI prints `message` and exits 1."""
    if isinstance(err, BerthError):
        message = err.message
    else:
        current_app.logger.exception("unhandled error in a jsonmessage stream")
        message = str(err) or err.__class__.__name__
    return {"errorDetail": {"message": message}, "error": message}


# ------------------------------------------------------------------------------------------ import

class CreateQuery(Schema):
    fromImage = fields.String(load_default=None)
    fromSrc = fields.String(load_default=None)
    repo = fields.String(load_default="")
    tag = fields.String(load_default=None)
    message = fields.String(load_default="")
    changes = fields.List(fields.String(), load_default=list)
    platform = fields.String(load_default=None)


@bp.post("/images/create")
def create_image():
    args = load_query(CreateQuery(), request.args)
    if args["fromImage"]:
        raise NotImplemented_(f"pull access denied for {args['fromImage']}: berth has no registry support yet")
    source = args["fromSrc"]
    if not source:
        raise InvalidParameter("fromSrc or fromImage is required")
    repo, tag = split_repo_tag(args["repo"], args["tag"] or None)
    changes = args["changes"]
    message = args["message"]
    if source == "-":
        body, label = _upload(), "-"
    else:
        if not source.startswith(("http://", "https://")):
            raise InvalidParameter(f"invalid import source {source!r}: use - or an http(s) URL")
        try:
            body = urllib.request.urlopen(source, timeout=30)  # noqa: S310 - the user's own URL
        except (urllib.error.URLError, ValueError, OSError) as err:
            raise InvalidParameter(f"error downloading {source}: {err}") from err
        label = source
    # moby: an upload ("-") fails with a status code, as nothing has been written yet; a URL import
    # has already sent "Downloading from", so its failure is the stream's last message (200).
    head = [] if source == "-" else [{"status": f"Downloading from {source}"}]
    try:
        image_id = _images().import_tar(body, label, repo or None, tag, message, changes)
    except Exception as err:     # bad content is an ArchiveError (InvalidParameter): 400
        if not head:
            raise
        return _jsonmessages(head + [_error_message(err)])
    finally:
        if source != "-":
            body.close()
    return _jsonmessages(head + [{"status": image_id}])


# ------------------------------------------------------------------------------------------ list

class ListQuery(Schema):
    all = DockerBool(load_default=False)
    digests = DockerBool(load_default=False)
    filters = Filters(LIST_FILTER_KEYS, load_default=dict)
    filter = fields.String(load_default=None)   # API < 1.28: a reference pattern


def _reference_matches(patterns: set[str], refs: list[str]) -> bool:
    for ref in refs:
        name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
        for pattern in patterns:
            if fnmatch.fnmatchcase(ref, pattern) or fnmatch.fnmatchcase(name, pattern):
                return True
    return False


@bp.get("/images/json")
def list_images():
    q = load_query(ListQuery(), request.args)
    f = q["filters"]
    if q["filter"]:
        f.setdefault("reference", set()).add(q["filter"])
    images = _images()
    rows = image_views.list_images(images.events)
    bounds = {}
    for key in ("before", "since"):
        for name in f.get(key, ()):
            bounds[key] = images.resolve(name)[0].created_nano
    dangling = f.get("dangling")
    if dangling and not dangling <= {"true", "false", "1", "0"}:
        raise InvalidParameter(f"invalid filter 'dangling={sorted(dangling)[0]}'")
    out = []
    for row in rows:
        refs = images.refs_of(row.id)
        tags = [r for r in refs if "@" not in r]
        labels = row.labels
        if dangling and (bool(tags) == (dangling & {"true", "1"} != set())):
            continue
        if "reference" in f and not _reference_matches(f["reference"], tags):
            continue
        if "before" in bounds and not row.created_nano < bounds["before"]:
            continue
        if "since" in bounds and not row.created_nano > bounds["since"]:
            continue
        if not labels_match(f.get("label", ()), labels):
            continue
        out.append({"Containers": -1, "Created": row.created_nano // 1_000_000_000, "Id": row.id,
                    "Labels": labels or None, "ParentId": row.parent,
                    "RepoDigests": [r for r in refs if "@" in r], "RepoTags": tags, "SharedSize": -1,
                    "Size": row.size})
    return jsonify(out)


# ------------------------------------------------------------------------------------------ one image

@bp.get("/images/<path:name>/json")
def inspect_image(name):
    images = _images()
    row, _ = images.resolve(name)
    return jsonify(images.inspect(row, request.environ.get("berth.api_version", "1.45")))


@bp.get("/images/<path:name>/history")
def image_history(name):
    images = _images()
    row, _ = images.resolve(name)
    return jsonify(images.history(row))


class TagQuery(Schema):
    repo = fields.String(load_default="")
    tag = fields.String(load_default=None)


@bp.post("/images/<path:name>/tag")
def tag_image(name):
    q = load_query(TagQuery(), request.args)
    repo, tag = split_repo_tag(q["repo"], q["tag"] or None)
    if not repo:
        raise InvalidParameter("repository name (repo) is required")
    _images().tag(name, repo, tag)
    return Response(status=201)


class DeleteQuery(Schema):
    force = DockerBool(load_default=False)
    noprune = DockerBool(load_default=False)


@bp.delete("/images/<path:name>")
def delete_image(name):
    q = load_query(DeleteQuery(), request.args)
    return jsonify(_images().delete(name, q["force"], q["noprune"]))


# ------------------------------------------------------------------------------------------ save/load

def _save(names: list[str]) -> Response:
    if not names:
        raise InvalidParameter("no image names given")
    stream = archive.save(_images(), names)
    return Response(stream, mimetype="application/x-tar")


class SaveQuery(Schema):
    names = fields.List(fields.String(), load_default=list)


@bp.get("/images/get")
def save_images():
    return _save(load_query(SaveQuery(), request.args)["names"])


@bp.get("/images/<path:name>/get")
def save_image(name):
    return _save([name])


class LoadQuery(Schema):
    quiet = DockerBool(load_default=False)


@bp.post("/images/load")
def load_images():
    load_query(LoadQuery(), request.args)   # quiet=: progress bars are not sent either way
    # moby (postImagesLoad) answers 200 once the query is valid and reports a failed load as an
    # errorDetail message; archive.load has then changed nothing (no image, no event, no files).
    try:
        lines = archive.load(_images(), _upload())
    except Exception as err:
        return _jsonmessages([_error_message(err)])
    return _jsonmessages([{"stream": line + "\n"} for line in lines])

