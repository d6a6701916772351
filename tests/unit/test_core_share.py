"""A forward takes the cores the service's other running forwards leave it, across processes, and a dead one's share comes back."""

from __future__ import annotations

import multiprocessing
import os
import signal

from model.core_share import SLOT, CoreShare

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


def test_a_forward_alone_takes_every_thread_and_beside_another_process_its_share(tmp_path):
    path = tmp_path / "cores"
    share = CoreShare(path, 2)
    with share.forward() as threads:
        assert threads == 2
    process, release = _other_process_in_a_forward(path)
    try:
        with share.forward() as threads:
            assert threads == 1 and share.running() == 2
    finally:
        release.set()
        process.join(30)
    with share.forward() as threads:
        assert threads == 2


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
