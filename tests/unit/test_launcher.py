"""make run's background command (launcher --then): niced, logged, and stopped whole with the service."""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import procfs
from launcher.__main__ import BACKGROUND_NICENESS, _background, _stop_group


def test_the_background_command_runs_niced_into_the_log_and_stops_with_its_children(tmp_path: Path):
    log = tmp_path / "service.log"
    started = _background(f"bash -c 'echo building; sleep 600 & echo $! > {tmp_path}/child; wait'", log)
    deadline = time.monotonic() + 10
    while not (tmp_path / "child").is_file() or not (tmp_path / "child").read_text().strip():
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.05)
    child = int((tmp_path / "child").read_text())
    assert os.getpriority(os.PRIO_PROCESS, started.pid) == os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICENESS
    assert os.getpgid(child) == started.pid != os.getpgid(0)
    _stop_group(started)
    assert started.poll() is not None
    deadline = time.monotonic() + 5
    while procfs.running(child):
        assert time.monotonic() < deadline, "the command's child outlived the stop"
        time.sleep(0.05)
    assert "building" in log.read_text()
