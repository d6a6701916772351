"""The glibc heap policy: keep the model's buffers mapped, give a large decode's memory back.

Back after a large decode: glibc keeps freed blocks in its arenas. After one
49 MP decode a worker stayed 330 MB larger although nothing referenced the
pixels any more, and the next large decode, on another thread's arena, added to
it. ``malloc_trim`` returns that memory (6-10 ms), so the decode budget bounds
resident memory, not only live objects. Mapped between forward passes: see
:func:`keep_activations_on_heap`. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

# Decodes smaller than this leave too little behind to be worth a trim.
TRIM_AFTER_BYTES = 64 * 1024 * 1024


def _load_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_trim()


def release_freed_memory(decoded_bytes: int) -> None:
    """After a decode that cost ``decoded_bytes``, return the heap's free memory to the OS if worth it."""
    if _malloc_trim is not None and decoded_bytes >= TRIM_AFTER_BYTES:
        _malloc_trim(0)


def release_warm_up_memory() -> None:
    """After a model's warm-up: give back what its passes in every compiled shape left free on the heap.

    The warm-up runs each shape once, so the heap grows to hold the buffers of all of them; a
    service then runs a few shapes, whose buffers alone come back and stay (keep_activations_on_heap).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


# A process whose model has had no work this long gives its heap's free memory back.
IDLE_TRIM_SECONDS = 5.0


class IdleTrim:
    """Returns the heap's free memory to the OS once the model has been idle for ``seconds``.

    Between forwards the heap keeps what every shape's activations and the request threads'
    decodes left free (keep_activations_on_heap): after the evaluation photos over both
    transports and twenty camera frames, ``malloc_trim`` in each process gave back 184 MiB of the
    service's 1724 MiB PSS. Under load nothing is trimmed, so no forward faults its buffers back
    in; after an idle spell, the first forward does (a few ms, docs/performance.md). One trim
    per idle spell, on a thread of its own, started on the first work (after any fork).
    """

    def __init__(self, seconds: float = IDLE_TRIM_SECONDS, trim: Callable[[int], object] | None = None):
        self.seconds = seconds
        self.trims = 0
        self._trim = trim if trim is not None else _malloc_trim
        self._last_work = time.monotonic()
        self._pending = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def worked(self) -> None:
        """Model thread, after each piece of work: the idle spell starts now."""
        if self._trim is None:
            return
        with self._lock:
            self._last_work = time.monotonic()
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="idle-trim", daemon=True)
                self._thread.start()

    def _watch(self) -> None:
        while True:
            with self._lock:
                idle = time.monotonic() - self._last_work
                due = self._pending and idle >= self.seconds
                if due:
                    self._pending = False
            if due:
                self._trim(0)  # type: ignore[misc]
                self.trims += 1
            time.sleep(self.seconds if due or not self._pending else max(0.05, self.seconds - idle))


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest activation an int8 or bf16 forward allocates is 13 MB (YOLOv5s at 640x640); glibc
# would map and unmap each such block on every call.
KEEP_ON_HEAP_BELOW = 64 * 1024 * 1024
TRIM_ABOVE = 128 * 1024 * 1024


def keep_activations_on_heap() -> bool:
    """Let the model's activation buffers stay on the heap between forward passes.

    glibc serves blocks above its mmap threshold (128 KB, raised only as large blocks are
    freed) with a fresh mapping and unmaps them on free, and trims the heap's top past its trim
    threshold: every forward then faults its activations in page by page (3,600 faults, 9 ms of
    an int8 YOLOv5s forward of 43 ms). Fixed thresholds keep them mapped; a decode of
    ``TRIM_AFTER_BYTES`` or more is still handed back by :func:`release_freed_memory`.
    Returns whether the C library took the settings (not glibc: nothing to do).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_ON_HEAP_BELOW)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_ABOVE))
