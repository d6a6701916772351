"""One thread per process runs all of the model's torch work, so OpenMP keeps a single team.

libgomp gives every thread that opens a parallel region a team of its own.
When HTTP request threads took turns at the model (each under a lock), a
process soon held more OpenMP threads than cores, and libgomp then stops
spinning between parallel regions: YOLOv5s's bf16 body took 45 ms instead of
25 ms, with the two cores half idle (docs/performance-log.md, 2026-11-24, "One model thread").
Loading, conversion, warm-up and every forward pass therefore run here;
request threads hand over work and wait. Each piece of work takes the share
of the cores that the other serving processes leave it (model.core_share). Work runs one item at a time in
arrival order, which is also what serialises inference. A request whose
caller has gone (disconnected, cancelled, out of deadline) while it waited is
dropped when its turn comes instead of costing a forward pass.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import torch

from common.errors import CallerGone
from model.core_share import CoreShare
from model.memory import IdleTrim

T = TypeVar("T")
# Answers whether the caller still waits for the result.
Alive = Callable[[], bool]


class InferenceThread:
    def __init__(self, name: str = "model", share: CoreShare | None = None, idle_trim: IdleTrim | None = None) -> None:
        """``share``: the cores this process's work shares with the other serving processes' (model.core_share);
        ``idle_trim``: told of each piece of work, it gives the heap back once the model idles (model.memory)."""
        # The thread starts on the first call, so a module-level instance survives gunicorn's fork.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._share = share
        self._idle_trim = idle_trim
        self._threads = 0  # what the model thread last set (touched on it only)

    def call(self, fn: Callable[..., T], *args: object, alive: Alive | None = None,
             waits: dict[str, float] | None = None) -> T:
        """Run ``fn(*args)`` on the model thread and return (or raise) what it did.

        ``alive`` is asked when the work's turn comes; if the caller has gone, the
        work is skipped and CallerGone raised instead. ``waits["queue"]`` gets the seconds the
        work waited for its turn (the stage metrics' ``queue``).
        """
        submitted = time.perf_counter()

        def run() -> T:
            if waits is not None:
                waits["queue"] = time.perf_counter() - submitted
            if alive is not None and not alive():
                raise CallerGone("the caller went away before the model ran")
            try:
                if self._share is None:
                    return fn(*args)
                with self._share.forward() as threads:
                    if threads != self._threads:
                        torch.set_num_threads(threads)
                        self._threads = threads
                    return fn(*args)
            finally:
                if self._idle_trim is not None:
                    self._idle_trim.worked()

        return self._executor.submit(run).result()
