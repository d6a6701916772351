"""Whether the HTTP caller still waits for its answer.

nginx closes its connection to gunicorn when its client goes away, and the
request's socket then reads as end-of-file. Asking costs one non-blocking
``select``; the model thread asks before it spends a forward pass on a
request (``model.inference_thread``).
"""

from __future__ import annotations

import select
import socket

from flask import request

from serving import Alive


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
