"""gunicorn's own error answers, in the service's JSON error shape.

gunicorn answers requests it cannot parse (Content-Length beside
Transfer-Encoding, a negative length, a request line or headers over its
limits, a bad chunk) before Flask sees them, with an HTML page written by
``gunicorn.util.write_error``. That function is the one place every such
answer goes through, so it is replaced here: the same status, the
documented ``{"error": {"code", "message"}}`` body, and a count in
``app_request_errors_total`` like every other error.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

from common.metrics import ERRORS

_CODES = {414: "request_too_large", 431: "request_too_large", 500: "internal"}


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    code = _CODES.get(status_int, "invalid_request")
    ERRORS.labels("http", "-", code).inc()
    body = json.dumps({"error": {"code": code, "message": mesg or reason}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def install() -> None:
    util.write_error = write_json_error
