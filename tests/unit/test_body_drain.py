"""The app finishes reading a body its route refused unread, so the front never sees a hang-up mid-request."""

from __future__ import annotations

import io

from flask import Flask, abort
from werkzeug.test import EnvironBuilder

from http_service.body_drain import DrainUnreadBody, drain


class _Unreadable(io.BytesIO):
    """A body stream that must not be touched."""

    def read(self, *args: object) -> bytes:
        raise AssertionError("the body was read")


def _refusing_app() -> Flask:
    app = Flask(__name__)

    @app.post("/refuse")
    def refuse() -> None:
        abort(415)

    return app


def _call(app, body: io.BytesIO, length: int | None) -> str:
    environ = EnvironBuilder(path="/refuse", method="POST", input_stream=body).get_environ()
    environ["CONTENT_LENGTH"] = "" if length is None else str(length)
    statuses: list[str] = []
    b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0]


def test_a_refused_body_is_read_to_its_end_before_the_answer():
    body = b"x" * 300_000
    unread, drained = io.BytesIO(body), io.BytesIO(body)
    flask_app = _refusing_app()
    assert _call(flask_app.wsgi_app, unread, len(body)).startswith("415")
    assert unread.tell() == 0  # the baseline: Flask alone leaves the body where it was
    assert _call(DrainUnreadBody(flask_app.wsgi_app, limit=len(body)), drained, len(body)).startswith("415")
    assert drained.tell() == len(body)


def test_bodies_without_a_length_or_over_every_routes_limit_are_left_alone():
    assert drain({"CONTENT_LENGTH": "", "wsgi.input": _Unreadable()}, limit=100) == 0
    assert drain({"CONTENT_LENGTH": "101", "wsgi.input": _Unreadable()}, limit=100) == 0
    assert drain({"CONTENT_LENGTH": "nonsense", "wsgi.input": _Unreadable()}, limit=100) == 0


def test_drain_stops_at_the_declared_length_and_at_the_streams_end():
    assert drain({"CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"y" * 50)}, limit=100) == 10
    partly_read = io.BytesIO(b"z" * 10)
    partly_read.read(4)
    assert drain({"CONTENT_LENGTH": "10", "wsgi.input": partly_read}, limit=100) == 6
