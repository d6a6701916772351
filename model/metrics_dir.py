"""Where each serving process keeps its Prometheus multiprocess files.

prometheus_client decides at import time whether it runs in multiprocess
mode, so this module (which does not import it) must run first in every
serving process: gunicorn's config file and the gRPC entry point call
:func:`prepare_dir` before anything imports :mod:`model.metrics`.

Each transport gets its own directory under ``<DETECTOR_RUN_DIR>/metrics`` and wipes
only that one at start: a restarted program never double-counts the files it
left behind, and never deletes the other program's live files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from model.config import ServerSettings

TRANSPORTS = ("http", "grpc")


def metrics_root() -> Path:
    return ServerSettings.from_env().metrics_dir


def prepare_dir(transport: str, wipe: bool) -> Path:
    """Point this process (and its children) at ``<root>/<transport>``, wiping it if asked."""
    directory = metrics_root() / transport
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    if wipe and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
