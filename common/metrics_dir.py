"""Where each serving process keeps its Prometheus multiprocess files.

prometheus_client decides at import time whether it runs in multiprocess
mode, so this module (which does not import it) must run first in every
serving process: gunicorn's config file and the gRPC entry point call
:func:`prepare_dir` before anything imports :mod:`common.metrics`.

Each transport gets its own directory under ``<DETECTOR_RUN_DIR>/metrics``.
The files are wiped once per supervisord, by the first process it starts: files
of an earlier run would be summed in, but a program that restarts within the
run (``supervisorctl restart``, a crash) keeps the counts of its predecessors,
so ``app_http_inference_count_total`` never goes back. Only the live gauges of
processes that are gone are dropped.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from common import procfs
from common.settings import ServerSettings

TRANSPORTS = ("http", "grpc")
_LIVE_GAUGE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def metrics_root() -> Path:
    return ServerSettings.from_env().metrics_dir


def _supervisor_identity() -> str:
    """The parent that started this program (supervisord), as pid and start time: unique across restarts."""
    parent = procfs.stat(os.getppid())
    return f"{os.getppid()}-{parent.start_time if parent else 'unknown'}"


def forget_dead_processes(directory: Path) -> list[int]:
    """Remove the live gauges (in flight, ready) of processes that are gone, or whose pid this one reuses."""
    forgotten = []
    for path in directory.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE.fullmatch(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or procfs.stat(pid) is None:
            path.unlink(missing_ok=True)
            forgotten.append(pid)
    return forgotten


def prepare_dir(transport: str) -> Path:
    """Point this process (and its children) at ``<root>/<transport>``; wipe the root once per supervisord."""
    root = metrics_root()
    directory = root / transport
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        owner_file, owner = root / "owner", _supervisor_identity()
        if not owner_file.exists() or owner_file.read_text() != owner:
            for name in TRANSPORTS:
                shutil.rmtree(root / name, ignore_errors=True)
            owner_file.write_text(owner)
        directory.mkdir(parents=True, exist_ok=True)
        forget_dead_processes(directory)
    return directory
