#!/usr/bin/env python3
"""``make run``'s foreground: supervisord with its log on the terminal and in ``<run dir>/service.log``.

Ctrl-C, or SIGINT, SIGTERM or SIGHUP to make's process group, stops every
program of the service before this returns, and ``make stop`` ends it too.

Why not ``supervisord | tee``: Ctrl-C killed ``tee`` and ``make`` at once;
supervisord then wrote its shutdown lines into the dead pipe and died before
it had stopped its programs, which run in process groups of their own and so
never saw the terminal's signal. They kept 8080 and 9090. Here supervisord runs
in a session of its own, this process copies its output (to the log file even
when the terminal has gone), and any of those signals becomes one SIGTERM to
supervisord, whose shutdown this process waits for. Should this process itself
be killed outright, the kernel sends supervisord SIGTERM (``PR_SET_PDEATHSIG``).
It also announces, once, when the service is ready (:mod:`scripts.announce_ready`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from scripts import announce_ready

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Console:
    """Writes each line to the terminal (while it takes them) and to the log file."""

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "ab", buffering=0)
        self.terminal: BinaryIO | None = sys.stdout.buffer
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.log.write(data)
            if self.terminal is not None:
                try:
                    self.terminal.write(data)
                    self.terminal.flush()
                except OSError:
                    self.terminal = None


def main(argv: list[str]) -> int:
    config = argv[1] if len(argv) > 1 else "supervisord.conf"
    run_dir = Path(os.environ["DETECTOR_RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    console = Console(run_dir / "service.log")
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", config],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_die_with_parent,
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            console.write(f"==> {name}: still stopping the service; supervisord's stop timeouts bound the wait\n".encode())
            return
        stopping.set()
        console.write(f"==> {name}: stopping every program of the service (front, http, grpc, grpc2, listeners)\n".encode())
        supervisord.send_signal(signal.SIGTERM)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)

    def announce() -> None:
        line = announce_ready.wait_ready(lambda: supervisord.poll() is not None or stopping.is_set())
        if line:
            console.write(line.encode())

    threading.Thread(target=announce, daemon=True).start()
    assert supervisord.stdout is not None
    for chunk in iter(lambda: supervisord.stdout.read1(65536), b""):
        console.write(chunk)
    status = supervisord.wait()
    console.write((b"==> supervisord stopped every program of the service and exited\n" if status == 0
                   else f"==> supervisord exited with status {status}\n".encode()))
    return 0 if stopping.is_set() else status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
