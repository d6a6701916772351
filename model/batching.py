"""Requests for one model that queue while it is busy run as one forward: Triton's dynamic batcher, on a CPU.

Each request's image joins its detector's :class:`BatchQueue` and hands the model thread one
``drain``; a drain takes the oldest waiting request and up to ``max_size - 1`` later ones of the
same input size (a batch is one tensor, so its images must letterbox to one shape), waiting at
most ``wait_seconds`` from the oldest's arrival for more to come. With ``wait_seconds`` 0, what
Triton's ``max_queue_delay_microseconds`` defaults to, a batch is only ever what had queued
anyway behind a running forward: nobody waits for a batch to fill.

On a 2-vCPU AMD EPYC (Zen 4), the int8 body at 320x320 costs 6.0 ms for one frame, 5.3 ms a
frame in a batch of two and 5.1 in one of four; at 640x640 a batch saves nothing (20.1, 20.5,
21.1 ms a photo): batches pay for camera frames, not photos (docs/performance-log.md,
2026-12-04). Every drain is one model-thread task, and there are as many drains as requests,
so every queued request is taken by some drain: the caller waits for its own request's answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import torch

from model.inference_thread import Alive

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPolicy:
    """``max_size``: images per forward at most (1: no batching); ``wait_seconds``: the longest the oldest waits."""

    max_size: int = 1
    wait_seconds: float = 0.0


@dataclass(eq=False)
class Pending(Generic[T]):
    """One request's image [3, H, W] waiting for a forward (as Detector.detect takes it, shrunk to
    ``max_side`` there), and then its answer or error."""

    image: torch.Tensor
    threshold: float | None
    alive: Alive | None
    max_side: int = 0
    submitted: float = field(default_factory=time.perf_counter)
    # Filled on the model thread: seconds waited for the model, the size of the batch it ran in.
    queued: float = 0.0
    batch_size: int = 0
    result: T | None = None
    error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def finish(self, result: T | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self._done.set()

    def answer(self) -> T:
        """The result, once some drain has run this request (or its error, raised)."""
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class BatchQueue:
    """One detector's requests waiting for the model thread, in arrival order."""

    def __init__(self, policy: BatchPolicy):
        self.policy = policy
        self._items: list[Pending] = []
        self._arrived = threading.Condition()

    def put(self, item: Pending) -> None:
        with self._arrived:
            self._items.append(item)
            self._arrived.notify()

    def take(self) -> list[Pending]:
        """The oldest request and up to ``max_size - 1`` more of its size, in arrival order; [] if none wait."""
        with self._arrived:
            if not self._items:
                return []
            size = self._items[0].size
            until = self._items[0].submitted + self.policy.wait_seconds
            while self._count(size) < self.policy.max_size and (left := until - time.perf_counter()) > 0:
                self._arrived.wait(left)
            chosen = [item for item in self._items if item.size == size][: self.policy.max_size]
            self._items = [item for item in self._items if item not in chosen]
            return chosen

    def _count(self, size: tuple[int, int]) -> int:
        return sum(item.size == size for item in self._items)
