"""Whether the HTTP caller still waits for its answer, and until when it will.

nginx closes its connection to gunicorn when its client goes away, and the
request's socket then reads as end-of-file. Asking costs one non-blocking
``select``; the model thread asks before it spends a forward pass on a
request (``model.inference_thread``).
"""

from __future__ import annotations

import select
import socket
import time

from flask import request

from common.errors import InvalidRequest
from serving import Alive

DEADLINE_HEADER = "X-Request-Timeout-Ms"
# A day: longer would be no deadline at all, and an unbounded number is no number.
MAX_TIMEOUT_MS = 86_400_000


def _still_connected(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except (OSError, ValueError):
        return False


def caller_alive() -> Alive:
    """For the current request: a check that is False once its connection is closed."""
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: True
    return lambda: _still_connected(sock)


def caller_deadline(default_ms: int = 0) -> float | None:
    """The request's deadline (``time.monotonic()`` time) from ``X-Request-Timeout-Ms``, else
    ``default_ms`` after now (0: none).

    The milliseconds count from when the request reaches this process; work that cannot end
    within them is skipped (serving.deadline). A malformed value is the caller's 400.
    """
    value = request.headers.get(DEADLINE_HEADER)
    if value is None:
        return time.monotonic() + default_ms / 1000 if default_ms else None
    try:
        milliseconds = float(value)
    except ValueError:
        milliseconds = float("nan")
    if not 0 < milliseconds <= MAX_TIMEOUT_MS:
        raise InvalidRequest(f"{DEADLINE_HEADER} must be a number of milliseconds from 1 to {MAX_TIMEOUT_MS}, "
                             f"got {value[:40]!r}", field=DEADLINE_HEADER)
    return time.monotonic() + milliseconds / 1000
