"""A forward takes the cores the service's other running forwards leave it, across processes; a dead one's
share comes back; while forwards keep overlapping, one that starts alone takes a share too."""

from __future__ import annotations

import multiprocessing
import os
import signal

from model.core_share import OVERLAP_HOLD_SECONDS, SLOT, CoreShare

FORK = multiprocessing.get_context("fork")


def _hold_a_forward(path, started, release) -> None:
    share = CoreShare(path, 2)
    with share.forward():
        started.set()
        release.wait(30)


def _other_process_in_a_forward(path):
    started, release = FORK.Event(), FORK.Event()
    process = FORK.Process(target=_hold_a_forward, args=(path, started, release))
    process.start()
    assert started.wait(30)
    return process, release


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_forward_alone_takes_every_thread_and_beside_another_process_its_share(tmp_path):
    path = tmp_path / "cores"
    clock = Clock()
    share = CoreShare(path, 2, clock)
    with share.forward() as threads:
        assert threads == 2
    process, release = _other_process_in_a_forward(path)
    try:
        with share.forward() as threads:
            assert threads == 1 and share.running() == 2
    finally:
        release.set()
        process.join(30)
    # Alone again, but forwards overlapped a moment ago: a steady load would soon start another beside it.
    clock.now += OVERLAP_HOLD_SECONDS / 2
    with share.forward() as threads:
        assert threads == 1 and share.running() == 1
    clock.now += OVERLAP_HOLD_SECONDS * 1.01
    with share.forward() as threads:
        assert threads == 2


def test_a_forward_joined_by_another_keeps_the_next_ones_to_their_share(tmp_path):
    path = tmp_path / "cores"
    clock = Clock()
    share = CoreShare(path, 2, clock)
    with share.forward() as threads:
        assert threads == 2  # it started alone ...
        process, release = _other_process_in_a_forward(path)  # ... and another began beside it
        clock.now += 0.5
    release.set()
    process.join(30)
    clock.now += OVERLAP_HOLD_SECONDS / 2
    with share.forward() as threads:
        assert threads == 1 and share.running() == 1


def test_a_process_killed_in_a_forward_leaves_its_share_and_its_slot(tmp_path):
    path = tmp_path / "cores"
    process, _ = _other_process_in_a_forward(path)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    share = CoreShare(path, 2)
    with share.forward() as threads:
        assert threads == 2
    # The dead process's slot (the first) was free to claim again.
    pid, busy = SLOT.unpack_from(path.read_bytes(), 0)
    assert (pid, busy) == (os.getpid(), 0)


def test_without_a_shared_file_a_process_counts_its_own_forwards(tmp_path):
    share = CoreShare(None, 4)
    with share.forward() as first:
        with share.forward() as second:
            assert (first, second) == (4, 2)
    assert share.running() == 0
