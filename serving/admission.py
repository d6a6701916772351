"""Admission control: a process takes at most so many predictions at once and refuses the next at once.

Without a bound, every request waits its turn at the model and latency grows
without limit while the queue does; and each waiting request holds a server
thread, so health checks and metrics starve too. A refusal (HTTP 503 with
``Retry-After``, gRPC ``RESOURCE_EXHAUSTED``) tells a client or a load balancer
to go elsewhere or come back, which is what it can act on.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from common.errors import Overloaded


class Admission:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the process's prediction slots, or raise Overloaded without waiting."""
        if not self._slots.acquire(blocking=False):
            raise Overloaded(
                f"this server is busy with {self.limit} predictions already; retry in a moment"
            )
        try:
            yield
        finally:
            self._slots.release()
