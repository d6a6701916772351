"""``python -m http_service``: become gunicorn, serving the Unix socket the ``listeners`` program holds.

The socket is handed over as systemd's socket activation does (descriptor 3,
``LISTEN_FDS``/``LISTEN_PID``), which gunicorn supports as such: it serves the
socket without binding, and leaves the path in place when it stops, so nginx's
connections wait in the backlog across ``supervisorctl restart http`` instead
of failing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from http_service.listeners import exec_with_listener

SD_LISTEN_FDS_START = 3
CONFIG = Path(__file__).with_name("gunicorn_conf.py")


def main() -> None:
    exec_with_listener(
        "http",
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG)],
        {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())},
        fd=SD_LISTEN_FDS_START,
    )


if __name__ == "__main__":
    main()
