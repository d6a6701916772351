"""The heap goes back to the OS once the model idles, once per idle spell, never while it works."""

from __future__ import annotations

import time

from model.inference_thread import InferenceThread
from model.memory import IdleTrim


def test_the_heap_is_trimmed_once_after_the_model_idles_not_while_it_works():
    trims: list[float] = []
    idle = IdleTrim(seconds=0.3, trim=lambda pad: trims.append(time.monotonic()))
    thread = InferenceThread(idle_trim=idle)
    started = time.monotonic()
    while time.monotonic() - started < 0.9:  # work every 50 ms: never idle for 0.3 s
        thread.call(lambda: None)
        time.sleep(0.05)
    assert trims == []
    # The idle spell starts inside the call (the model thread's worked()), after this and before it returns.
    before_last_work = time.monotonic()
    thread.call(lambda: None)
    time.sleep(1.5)
    assert len(trims) == 1 and 0.3 <= trims[0] - before_last_work < 1.2
    thread.call(lambda: None)  # a new idle spell: one more trim
    time.sleep(1.2)
    assert len(trims) == 2 and idle.trims == 2


def test_work_that_fails_still_counts_as_work():
    trims: list[int] = []
    thread = InferenceThread(idle_trim=IdleTrim(seconds=0.2, trim=trims.append))

    def fail() -> None:
        raise ValueError("a bad forward")

    try:
        thread.call(fail)
    except ValueError:
        pass
    time.sleep(0.6)
    assert trims == [0]
