"""Error classes, classified once: commands raise these, one handler maps them to HTTP.

Messages use Docker's wording because the docker CLI and docker-py print them verbatim.
"""


class BerthError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidParameter(BerthError):
    status = 400


class Unauthorized(BerthError):
    status = 401


class Forbidden(BerthError):
    status = 403


class NotFound(BerthError):
    status = 404


class Conflict(BerthError):
    status = 409


class ConcurrentChange(Conflict):
    """An append's expected_version was not its stream's version: someone changed it meanwhile.
    Commands retry once on a fresh read, then answer 409."""


class PayloadTooLarge(BerthError):
    status = 413


class NotModified(BerthError):
    status = 304


class SystemError_(BerthError):
    status = 500


class NotImplemented_(BerthError):
    status = 501


class Unavailable(BerthError):
    status = 503


def register_error_handlers(flask_app) -> None:
    """Map every error to Docker's `{"message": ...}` JSON body (exact `application/json`)."""
    from flask import jsonify, Response
    from werkzeug.exceptions import HTTPException, NotFound as WNotFound, MethodNotAllowed

    def json_error(status: int, message: str):
        if status == 304:
            return Response(status=304)
        resp = jsonify({"message": message})
        resp.status_code = status
        return resp

    @flask_app.errorhandler(BerthError)
    def _berth_error(err: BerthError):
        return json_error(err.status, err.message)

    @flask_app.errorhandler(WNotFound)
    @flask_app.errorhandler(MethodNotAllowed)
    def _no_route(_err):
        # Docker answers an unknown route *and* a known route with the wrong method this way.
        return json_error(404, "page not found")

    @flask_app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return json_error(err.code or 500, err.description or err.name)

    @flask_app.errorhandler(Exception)
    def _unexpected(err: Exception):
        flask_app.logger.exception("unhandled error")
        return json_error(500, str(err) or err.__class__.__name__)
