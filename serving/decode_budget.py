"""A process-wide budget of bytes that image decoding may hold at once.

A pixel cap alone does not bound memory: a 95 KB PNG can claim 49 MP of
16-bit pixels, and a batch or a burst of such requests decodes several at
once. Each decode reserves its estimated peak (:func:`serving.images.decode_cost`)
before it starts and gives it back when the picture has been shrunk to the
model's size, so the process's decoding memory never exceeds the budget,
whatever the number of requests or batch items.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from common.errors import ImageTooLarge, Overloaded

MIB = 1024 * 1024


class DecodeBudget:
    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError("the decode budget must be positive")
        self.limit = limit_bytes
        self._free = limit_bytes
        self._changed = threading.Condition()

    @property
    def free(self) -> int:
        with self._changed:
            return self._free

    @contextmanager
    def reserve(self, nbytes: int, timeout: float) -> Iterator[None]:
        """Hold ``nbytes`` of the budget, waiting up to ``timeout`` s for other decodes to finish.

        A picture that alone needs more than the whole budget is ImageTooLarge
        (the caller's to fix); one that finds the budget busy for too long is
        Overloaded (retry later).
        """
        if nbytes > self.limit:
            raise ImageTooLarge(
                f"decoding this image would take {nbytes // MIB} MiB; the limit is {self.limit // MIB} MiB "
                "(fewer pixels or 8-bit channels fit)"
            )
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._free < nbytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._changed.wait(remaining):
                    if self._free >= nbytes:
                        break
                    raise Overloaded("this server is busy decoding other large images; retry in a moment")
            self._free -= nbytes
        try:
            yield
        finally:
            with self._changed:
                self._free += nbytes
                self._changed.notify_all()
