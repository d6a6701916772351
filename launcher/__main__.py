#!/usr/bin/env python3
"""``make run``'s foreground: supervisord with its log on the terminal and in ``<run dir>/service.log``.

Ctrl-C, or SIGINT, SIGTERM or SIGHUP to make's process group, stops every
program of the service before this returns, and ``make stop`` ends it too.

Why not ``supervisord | tee``: Ctrl-C killed ``tee`` and ``make`` at once;
supervisord then wrote its shutdown lines into the dead pipe and died before
it had stopped its programs, which run in process groups of their own and so
never saw the terminal's signal. They kept 8080 and 9090. Here supervisord runs
in a session of its own and writes to the log file, which no signal can close;
this process follows the file onto the terminal, and turns any of those
signals into one SIGTERM to supervisord, whose shutdown it waits for. It takes
those signals synchronously: they are blocked in every thread of this process
and collected by the loop that follows the log (``sigtimedwait``). With a Python
handler instead, a signal the kernel gave to another thread (gRPC's, started by
the readiness check) could set Python's flag without waking the main thread's
loop, and the handler never ran: once in CI, ``make run`` outlived a SIGTERM to
its group by 140 s without a line from this process. Should
this process itself be killed outright, the kernel sends supervisord SIGTERM
(``PR_SET_PDEATHSIG``). It also announces, once, when the service is ready
(:mod:`launcher.announce_ready`), and then starts ``--then``'s command in the background, niced
(`make run`: the int8 body a quick first export deferred, exporters.int8_next); that command
stops with the service.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from launcher import announce_ready

PR_SET_PDEATHSIG = 1
# The background command yields the cores to the service while both want them.
BACKGROUND_NICENESS = 10
BACKGROUND_STOP_SECONDS = 5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FOLLOW_SECONDS = 0.1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _to_terminal(data: bytes) -> None:
    """The terminal may be gone (a closed window): the log file still has everything."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError:
        pass


def _background(command: str, log_path: Path) -> subprocess.Popen:
    """``command`` at a lower priority, its output in the log, in a process group of its own to stop whole."""

    def prepare() -> None:
        _die_with_parent()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked here (main), but not in the command
        os.nice(BACKGROUND_NICENESS)

    with open(log_path, "ab") as log:
        return subprocess.Popen(shlex.split(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=prepare)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (a compiler it started included), then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, BACKGROUND_STOP_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="supervisord.conf")
    parser.add_argument("--then", metavar="COMMAND",
                        help="once the service is ready, run this in the background (niced; stopped with the service)")
    args = parser.parse_args(argv[1:])
    config = args.config
    run_dir = Path(os.environ["DETECTOR_RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "service.log"
    with open(log_path, "ab") as log:
        follow = open(log_path, "rb")
        follow.seek(0, os.SEEK_END)
        supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", config],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    stopping = threading.Event()
    background: list[subprocess.Popen] = []  # what --then started, once the service is ready

    def note(text: str) -> None:
        """A line of this script's own in the log, which the terminal then shows like the rest."""
        with open(log_path, "ab") as log:
            log.write(text.encode())

    def stop(signum: int) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            note(f"==> {name}: still stopping the service; supervisord's stop timeouts bound the wait\n")
            return
        stopping.set()
        note(f"==> {name}: stopping every program of the service (front, http, grpc, grpc2, grpc-forkserver, listeners)\n")
        supervisord.send_signal(signal.SIGTERM)
        if background:
            _stop_group(background[0])

    # Before any thread starts, so that every thread (and any a library starts from them) inherits it.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    ready = threading.Event()

    def announce() -> None:
        line = announce_ready.wait_ready(lambda: supervisord.poll() is not None or stopping.is_set())
        if line:
            note(line)
            ready.set()

    threading.Thread(target=announce, daemon=True).start()
    while supervisord.poll() is None:
        # Started from this thread: PR_SET_PDEATHSIG fires when the thread that started a child ends.
        if args.then and ready.is_set() and not background and not stopping.is_set():
            background.append(_background(args.then, log_path))
        data = follow.read()
        if data:
            _to_terminal(data)
        received = signal.sigtimedwait(STOP_SIGNALS, 0 if data else FOLLOW_SECONDS)
        if received is not None:
            stop(received.si_signo)
    status = supervisord.wait()
    if background:
        _stop_group(background[0])
    note("==> supervisord stopped every program of the service and exited\n" if status == 0
         else f"==> supervisord exited with status {status}\n")
    _to_terminal(follow.read())
    return 0 if stopping.is_set() else status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
