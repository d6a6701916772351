"""One thread per process runs all of the model's torch work, so OpenMP keeps a single team.

libgomp gives every thread that opens a parallel region a team of its own.
When HTTP request threads took turns at the model (each under a lock), a
process soon held more OpenMP threads than cores, and libgomp then stops
spinning between parallel regions: YOLOv5s's bf16 body took 45 ms instead of
25 ms, with the two cores half idle (docs/performance.md, "One model thread").
Loading, conversion, warm-up and every forward pass therefore run here;
request threads hand over work and wait. Work runs one item at a time in
arrival order, which is also what serialises inference.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


class InferenceThread:
    def __init__(self, name: str = "model") -> None:
        # The thread starts on the first call, so a module-level instance survives gunicorn's fork.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the model thread and return (or raise) what it did."""
        return self._executor.submit(fn, *args).result()
