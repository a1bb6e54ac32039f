"""`docker cp`: HEAD / GET / PUT /containers/{id}/archive?path= (moby's api/server/router/container/copy.go)."""
from __future__ import annotations

from flask import Blueprint, Response, request
from marshmallow import Schema, fields

from app.api import current_engine
from app.common import filespan
from app.api.params import DockerBool, load_query
from app.errors import InvalidParameter
from app.runtime.containers.archive import encode_stat

bp = Blueprint("container_archive", __name__)
STAT_HEADER = "X-Docker-Container-Path-Stat"


class ArchiveQuery(Schema):
    path = fields.String(load_default="")


class PutArchiveQuery(ArchiveQuery):
    noOverwriteDirNonDir = DockerBool(load_default=False)
    copyUIDGID = DockerBool(load_default=False)


def _path(q: dict) -> str:
    if not q["path"]:
        raise InvalidParameter("bad parameter: path cannot be empty")
    return q["path"]


@bp.route("/containers/<ref>/archive", methods=["GET", "HEAD"])
def container_archive(ref):
    containers = current_engine().containers
    path = _path(load_query(ArchiveQuery(), request.args))
    if request.method == "HEAD":
        stat = containers.archive_stat(ref, path)
        return Response(status=200, headers={STAT_HEADER: encode_stat(stat)}, mimetype="application/json")
    stat, chunks = containers.archive_get(ref, path, spans=bool(request.environ.get(filespan.ENVIRON_KEY)))
    return Response(chunks, headers={STAT_HEADER: encode_stat(stat)}, mimetype="application/x-tar")


class _LazyBody:
    """The request body, taken from the server on the first read: a request refused before that
    (404, read-only rootfs) leaves the body to the server's own drain, so the answer still goes out."""

    def __init__(self, environ):
        self._environ = environ
        self._body = None

    def read(self, n: int = -1) -> bytes:
        if self._body is None:
            fast = self._environ.get("berth.body")
            self._body = fast() if fast else request.stream
        return self._body.read(n)


def _upload():
    return _LazyBody(request.environ)


@bp.put("/containers/<ref>/archive")
def put_container_archive(ref):
    q = load_query(PutArchiveQuery(), request.args)
    current_engine().containers.archive_put(ref, _path(q), _upload(), q["noOverwriteDirNonDir"], q["copyUIDGID"])
    return Response(status=200)
