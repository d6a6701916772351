"""A caller's deadline: work that cannot finish before it is skipped, and counted, not done for nobody.

HTTP callers state theirs with ``X-Request-Timeout-Ms`` (milliseconds from arrival); gRPC callers
with gRPC's own deadline. The check runs when a request arrives and again on the model thread, just
before its forward: if less time is left than the model's recent forwards took
(``Detector.forward_seconds``), the request ends at once with ``deadline_exceeded`` (504 /
``DEADLINE_EXCEEDED``) and the model moves on to a request that can still make it.

Requests keep their arrival order. Under a queue longer than the deadline, the oldest expire
first and cost nothing, so the model's time goes to the newest frames: for a camera, whose older
frame is already stale, that is the frame worth answering.
"""

from __future__ import annotations

import time

from common.errors import DeadlineExceeded
from model.detector import Detector
from model.inference_thread import Alive


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (``time.monotonic()`` time), None without one."""
    return None if deadline is None else deadline - time.monotonic()


def check_arrival(deadline: float | None) -> None:
    """A request whose deadline has already passed is not started."""
    left = remaining(deadline)
    if left is not None and left <= 0:
        raise DeadlineExceeded("the request's deadline had passed when it arrived")


def within(deadline: float | None, detector: Detector, alive: Alive | None) -> Alive | None:
    """``alive``, which also raises DeadlineExceeded once too little time is left for ``detector``'s forward."""
    if deadline is None:
        return alive

    def check() -> bool:
        left = deadline - time.monotonic()
        if left < detector.forward_seconds:
            raise DeadlineExceeded(
                f"{max(left, 0) * 1000:.0f} ms left of the request's deadline, and the model takes about "
                f"{detector.forward_seconds * 1000:.0f} ms: skipped rather than answered late")
        return alive() if alive is not None else True

    return check
