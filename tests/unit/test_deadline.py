"""serving.deadline: work that cannot end before the caller's deadline is refused, counted, and costs nothing."""

from __future__ import annotations

import time

import pytest

from common.errors import DeadlineExceeded
from serving.deadline import check_arrival, remaining, within


class Model:
    """What the check reads of a detector: how long its recent forwards took."""

    def __init__(self, forward_seconds: float):
        self.forward_seconds = forward_seconds


def test_no_deadline_changes_nothing():
    assert remaining(None) is None
    check_arrival(None)
    alive = lambda: True  # noqa: E731
    assert within(None, Model(1.0), alive) is alive


def test_a_deadline_already_passed_is_refused_on_arrival():
    with pytest.raises(DeadlineExceeded, match="had passed"):
        check_arrival(time.monotonic() - 0.001)
    check_arrival(time.monotonic() + 1)


def test_the_forward_runs_only_if_it_can_end_in_time():
    deadline = time.monotonic() + 0.5
    assert within(deadline, Model(0.03), None)() is True
    with pytest.raises(DeadlineExceeded, match=r"ms left of the request's deadline, and the model takes about 800 ms"):
        within(deadline, Model(0.8), None)()
    assert within(deadline, Model(0.03), lambda: False)() is False  # a caller who left is still a caller who left
    assert DeadlineExceeded.http_status == 504 and DeadlineExceeded.grpc_status == "DEADLINE_EXCEEDED"


def test_the_header_sets_the_deadline_and_a_routes_default_applies_without_it():
    from flask import Flask

    from common.errors import InvalidRequest
    from http_service.caller import caller_deadline

    app = Flask(__name__)
    with app.test_request_context(headers={"X-Request-Timeout-Ms": "250"}):
        assert 0.15 < caller_deadline(100) - time.monotonic() <= 0.25  # the caller's own wins over the default
    with app.test_request_context():
        assert caller_deadline() is None
        assert 0.0 < caller_deadline(100) - time.monotonic() <= 0.1  # DETECTOR_DEEPSTACK_DEADLINE_MS
    with app.test_request_context(headers={"X-Request-Timeout-Ms": "soon"}), pytest.raises(InvalidRequest):
        caller_deadline(100)
