"""The Triton + OpenVINO peer as a process: started on free 127.0.0.1 ports, stopped with its group.

The peer runs in its own environment (``.venv-peer``, ``make peer``: PyPI's ``nvidia-pytriton`` and
OpenVINO), never among the service's dependencies; ``harness/peer_triton.py`` is its program.
Triton's Python stub links the system libpython, so the peer runs with ``LD_LIBRARY_PATH`` set to
that Python's own library folder (:func:`peer_env`). Used by ``scripts/bench_peers.py`` and its tests.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from harness.service_process import REPO_ROOT

PEER_PYTHON = REPO_ROOT / ".venv-peer" / "bin" / "python"
PEER_START_SECONDS = 180.0


def peer_env() -> dict[str, str]:
    """The peer's Python stub links the system libpython: the venv Python's own library folder must be found."""
    libdir = subprocess.run([str(PEER_PYTHON), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    return {**os.environ, "LD_LIBRARY_PATH": f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}".rstrip(":")}


class Peer:
    """Triton + OpenVINO, started for the run, stopped (with its process group) at the end.

    A start that fails is tried once more, on new ports; if that fails too, the error carries the
    peer's own stderr (pytriton and Triton say there why they stopped). The peer's stderr is kept
    for its whole run: a run that ends in an error (a client that failed against it) prints it.
    """

    ATTEMPTS = 2

    def __init__(self, int8_xml: Path, names: Path, instances: int, hint: str):
        self._arguments = ["serve", "--model", str(int8_xml), "--categories", str(names),
                           "--instances", str(instances), "--hint", hint]
        self.http = ""

    def __enter__(self) -> "Peer":
        for attempt in range(1, self.ATTEMPTS + 1):
            errors = tempfile.TemporaryFile("w+")
            if self._start(errors):
                self._errors = errors
                return self
            said = _last_words(errors)
            errors.close()
            print(f"the peer did not start (attempt {attempt} of {self.ATTEMPTS})", file=sys.stderr)
        raise SystemExit(f"the peer did not start; its last words:\n{said}")

    def _start(self, errors: IO[str]) -> bool:
        """True once the peer has printed its addresses; else it is stopped and False."""
        self._process = subprocess.Popen(
            [str(PEER_PYTHON), "-m", "harness.peer_triton", *self._arguments], cwd=REPO_ROOT,
            stdout=subprocess.PIPE, stderr=errors, text=True, env=peer_env(), start_new_session=True)
        deadline = time.monotonic() + PEER_START_SECONDS
        assert self._process.stdout is not None
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self._process.stdout], [], [], left)[0]:
                break
            line = self._process.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                self.http = json.loads(line)["http"]
                return True
        self._stop()
        return False

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._stop()
        if kind is not None:
            print(f"the peer's last words:\n{_last_words(self._errors)}", file=sys.stderr)
        self._errors.close()

    def _stop(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(30)
        except ProcessLookupError:  # the group is gone already: a peer that failed to start
            self._process.wait()
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def _last_words(errors: IO[str]) -> str:
    """The end of what the peer wrote to ``errors``."""
    errors.seek(0)
    return errors.read()[-3000:]
