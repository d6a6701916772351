"""Workers an nginx master left behind when it was killed outright (``kill -9``).

nginx's workers outlive their master: they keep serving the inherited port,
in the master's process group, which nobody manages any more. supervisord
stops only the new master's group, so they survived ``make stop``. The next
front asks them to finish their requests and leave before it starts.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from common import procfs

log = logging.getLogger("http_service.front")

DRAIN_SECONDS = 10.0


def _group_members(pgid: int) -> list[int]:
    """nginx processes in process group ``pgid``."""
    return [p.pid for p in procfs.processes() if p.comm == "nginx" and p.pgrp == pgid]


def stop_orphaned_workers(pid_file: Path) -> list[int]:
    """QUIT (drain, then exit) the workers of a dead master named by ``pid_file``; KILL what stays."""
    try:
        master = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    if procfs.stat(master) is not None:
        return []
    orphans = _group_members(master)
    if not orphans:
        return []
    log.warning("nginx master %d is gone but left workers %s: draining them", master, orphans)
    os.killpg(master, signal.SIGQUIT)
    deadline = time.monotonic() + DRAIN_SECONDS
    while _group_members(master) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_members(master):
        os.killpg(master, signal.SIGKILL)
    return orphans
