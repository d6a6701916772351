"""The machine's cores, shared between the forwards that all serving processes run at one moment.

A forward alone cannot use two cores well (its parallel regions are short, its decode serial),
and a second request to the same process waits a whole forward for it. Two model processes of
one thread each answer twice the camera frames (docs/performance-log.md, 2026-12-04), but one
photo alone then takes half again as long. So every serving process (each gunicorn worker, each
gRPC server) counts its forwards in one small shared file, and a forward takes the threads its
process may use (``DETECTOR_TORCH_THREADS``) divided by the forwards running in the whole service
as it starts: alone it gets them all, beside another it gets its share.

Under a steady load (cameras, several clients) a forward that starts alone is soon joined by one
that takes the share, and the two then run more threads than there are cores; and a forward of
one thread costs less CPU than one of two (22.7 against 17.0 core-ms for a 320x320 frame, AMD
EPYC, Zen 4, 2 vCPUs). So for ``OVERLAP_HOLD_SECONDS`` after forwards last overlapped, a process's
forward takes a share as if another were running; a photo at a time still gets every thread.
Four cameras were answered in time 95.2 and 95.1% of the time with the hold, 91.5 and 92.5%
without (docs/performance-log.md, 2026-12-05).

The file (``$DETECTOR_RUN_DIR/cores``) holds one slot per process: its pid and whether it is in a
forward. A process claims a free slot under an flock at start; marking and counting take no lock
(a forward may miscount one that starts at the same instant: it then runs with one thread more or
less, once). A killed process's slot is free again, and its mark ignored, as soon as its pid is
gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Callable, Iterator

SLOTS = 64
SLOT = struct.Struct("=ii")  # pid, 1 while in a forward
# Overlaps recur every few tens of milliseconds under a steady load; a lone client's forwards never overlap.
OVERLAP_HOLD_SECONDS = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CoreShare:
    """This process's slot in the shared file; without a file, the process counts only its own forwards."""

    def __init__(self, path: Path | None, threads: int, clock: Callable[[], float] = time.monotonic):
        self.threads = threads
        self._clock = clock
        self._overlapped_until = 0.0  # this process's forwards take a share until then
        self._pid = os.getpid()
        self._map: mmap.mmap | None = None
        self._offset = 0
        self._running = 0
        if path is not None:
            self._claim(Path(path))

    def _claim(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SLOTS * SLOT.size:
                os.ftruncate(fd, SLOTS * SLOT.size)
            self._map = mmap.mmap(fd, SLOTS * SLOT.size)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                for index in range(SLOTS):
                    pid, _ = SLOT.unpack_from(self._map, index * SLOT.size)
                    if pid in (0, self._pid) or not _alive(pid):
                        self._offset = index * SLOT.size
                        SLOT.pack_into(self._map, self._offset, self._pid, 0)
                        return
                self._map = None  # every slot taken by a live process: count only this process's own
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def running(self) -> int:
        """Forwards running now in every process sharing the file (this process's included)."""
        if self._map is None:
            return self._running
        count = 0
        for index in range(SLOTS):
            pid, busy = SLOT.unpack_from(self._map, index * SLOT.size)
            if busy and (pid == self._pid or _alive(pid)):
                count += 1
        return count

    @contextlib.contextmanager
    def forward(self) -> Iterator[int]:
        """Marks a forward as running while it runs; yields the threads it may use."""
        self._running += 1
        if self._map is not None:
            SLOT.pack_into(self._map, self._offset, self._pid, 1)
        try:
            running = self._note_overlap()
            sharing = max(running, 2 if self._clock() < self._overlapped_until else 1)
            yield max(1, self.threads // sharing)
        finally:
            self._note_overlap()  # one that started beside this forward
            self._running -= 1
            if self._map is not None:
                SLOT.pack_into(self._map, self._offset, self._pid, 0)

    def _note_overlap(self) -> int:
        """The forwards running now (this one included); if others are, the hold starts again."""
        running = self.running()
        if running > 1:
            self._overlapped_until = self._clock() + OVERLAP_HOLD_SECONDS
        return running
