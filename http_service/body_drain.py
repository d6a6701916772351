"""Read what a route left unread of its request body before the answer goes out.

A route may refuse a request without reading its body: Flask answers 413 from
the ``Content-Length`` alone, a 415 or 404 never looks at it. gunicorn then
closes the connection with the body's tail still unread, while nginx may still
be writing it; nginx sees its upstream hang up mid-request and answers 502
instead of the route's 4xx (9 requests in 120 with a 1 MiB body at concurrency 8).
nginx has already buffered and bounded every body, so reading the rest from
gunicorn's Unix socket costs milliseconds and turns the race into the route's
own answer.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

CHUNK_BYTES = 64 * 1024

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def drain(environ: dict[str, Any], limit: int) -> int:
    """Read and drop the unread rest of a ``Content-Length`` body of at most ``limit`` bytes; return the count.

    A body without a length, or longer than any route accepts (nginx never
    sends one; only a client reaching gunicorn directly could), is left alone:
    gunicorn closes that connection anyway, and reading it would let a client
    hold a thread for as long as it cares to send. gunicorn's ``wsgi.input``
    ends where the body ends, whatever the route has already read of it.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
    if length <= 0 or length > limit:
        return 0
    stream = environ["wsgi.input"]
    drained = 0
    while drained < length:
        chunk = stream.read(min(CHUNK_BYTES, length - drained))
        if not chunk:
            break
        drained += len(chunk)
    return drained


class DrainUnreadBody:
    """WSGI middleware: after the app has answered, and before gunicorn sends it, finish reading the body."""

    def __init__(self, app: WSGIApp, limit: int):
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = self.app(environ, start_response)
        drain(environ, self.limit)
        return response
