"""Waiting for a condition that another process brings about, with a deadline that names it."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> None:
    """Ask ``condition`` every ``every`` seconds until it is true; after ``timeout`` seconds fail with
    an AssertionError that says ``what`` did not happen, so a test's failure reads as the promise broken."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(every)
