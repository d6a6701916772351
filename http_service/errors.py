"""Every failure on port 8080 becomes the documented JSON error, counted, in one place.

Routes raise :class:`DetectorError` (or let Flask raise its own HTTP errors)
and never build error answers themselves, so none can forget to count one.
The front's own refusals (nginx: malformed, too large, too slow) reach the
app as an internal ``/_edge/<status>`` request, answered and counted here too.
"""

from __future__ import annotations

import logging
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from common.limits import JSON_BODY_BYTES
from http_service.responses import error_response
from common.errors import DetectorError
from serving import record_error

log = logging.getLogger(__name__)

# What the front refuses before the app sees a request: status -> (code, message).
EDGE_ERRORS = {
    400: ("invalid_request", "the request is not valid HTTP (a malformed request line, header or chunked body)"),
    404: ("not_found", "no such route; see /openapi.json"),
    405: ("method_not_allowed", "this method is not allowed here; see /openapi.json"),
    408: ("request_timeout", "the request did not arrive in time"),
    411: ("length_required", "a body needs a Content-Length or chunked Transfer-Encoding"),
    413: ("request_too_large", "the request body is over this route's limit (see the README's limits)"),
    414: ("request_too_large", "the request line is too long"),
    494: ("request_too_large", "the request headers are too large"),
    500: ("internal", "internal server error"),
    501: ("invalid_request", "this Transfer-Encoding is not supported"),
}
# nginx reports 494 internally and sends 400; an unknown Transfer-Encoding (501 to nginx) is the caller's fault.
_WIRE_STATUS = {494: 400, 501: 400}


def with_error_headers(response: Response, error: DetectorError) -> Response:
    """Tell the client when to come back, where retrying later is right (Overloaded), and which
    methods a route takes, on a 405 (RFC 9110's ``Allow``)."""
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    allow = getattr(error, "allow", None)
    if allow:
        response.headers["Allow"] = ", ".join(allow)
    return response


def _answer(error: DetectorError) -> tuple[Response, int]:
    response, code = error_response(error.http_status, error.code, error.message, error.choices)
    return with_error_headers(response, error), code


class HTTPRefusal(DetectorError):
    """A Flask/werkzeug or front refusal, carried through the same counting and answer.

    ``allow``: a 405's methods, which RFC 9110 requires in its ``Allow`` header.
    """

    def __init__(self, status: int, code: str, message: str, allow: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.http_status = status
        self.allow = allow

    @classmethod
    def of(cls, exc: HTTPException) -> "HTTPRefusal":
        status = exc.code or 500
        if status == 413:
            limit = request.max_content_length or JSON_BODY_BYTES
            return cls(413, "request_too_large", f"this request's body is limited to {limit} bytes")
        code = (exc.name or "error").lower().replace(" ", "_")
        allow = sorted(exc.valid_methods) if isinstance(exc, MethodNotAllowed) and exc.valid_methods else None
        return cls(status, code, exc.description or code, allow)


def register_route_errors(api: Blueprint, transport: str, body: Callable[[DetectorError], dict[str, Any]]) -> None:
    """A blueprint whose protocol has an error shape of its own (DeepStack's, the inference
    protocol's): the same statuses, headers and counting as every route, in ``body``'s shape."""

    def failure(error: DetectorError) -> Any:
        record_error(transport, error)
        return with_error_headers(jsonify(body(error)), error), error.http_status

    api.register_error_handler(DetectorError, failure)
    api.register_error_handler(HTTPException, lambda exc: failure(HTTPRefusal.of(exc)))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DetectorError)
    def detector_error(exc: DetectorError) -> Any:
        record_error("http", exc)
        return _answer(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        error = HTTPRefusal.of(exc)
        record_error("http", error)
        return _answer(error)

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = DetectorError("internal server error")
        record_error("http", error)
        return _answer(error)


def edge_blueprint() -> Blueprint:
    """``/_edge/<status>``: nginx's ``error_page`` target; reachable only through the front's internal redirect."""
    edge = Blueprint("edge", __name__)

    @edge.get("/_edge/<int:status>")
    def refused(status: int) -> Any:
        code, message = EDGE_ERRORS.get(status, ("invalid_request", "the request was refused"))
        allow = _methods_of(request.headers.get("X-Refused-Uri", "")) if status == 405 else None
        raise HTTPRefusal(_WIRE_STATUS.get(status, status), code, message, allow)

    return edge


def _methods_of(path: str) -> list[str] | None:
    """The methods the app routes for ``path`` (the refused request's URI: nginx refuses TRACE itself)."""
    try:
        path = urlsplit(path).path
        return sorted(current_app.url_map.bind("localhost").allowed_methods(path)) or None
    except Exception:  # noqa: BLE001 - a path the map cannot parse just gets no Allow header
        return None
