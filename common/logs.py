"""The one log format every process of the service writes (supervisord forwards it to its stdout)."""

from __future__ import annotations

import logging


def configure_logging() -> None:
    """Timestamped lines on stderr, with the pid: several processes share one log."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s", force=True
    )
