"""The machine's cores, shared between the forwards that all serving processes run at one moment.

A forward alone cannot use two cores well (its parallel regions are short, its decode serial),
and a second request to the same process waits a whole forward for it. Two model processes of
one thread each answer twice the camera frames (docs/performance-log.md, 2026-12-04), but one
photo alone then takes half again as long. So every serving process (each gunicorn worker, each
gRPC server) counts its forwards in one small shared file, and a forward takes the threads its
process may use (``DETECTOR_TORCH_THREADS``) divided by the forwards running in the whole service
as it starts: alone it gets them all, beside another it gets its share.

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
from pathlib import Path
from typing import Iterator

SLOTS = 64
SLOT = struct.Struct("=ii")  # pid, 1 while in a forward


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

    def __init__(self, path: Path | None, threads: int):
        self.threads = threads
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
            yield max(1, self.threads // max(1, self.running()))
        finally:
            self._running -= 1
            if self._map is not None:
                SLOT.pack_into(self._map, self._offset, self._pid, 0)
