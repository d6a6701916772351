"""make run's background command (launcher --then): niced, logged, and stopped whole with the service."""

from __future__ import annotations

import os
from pathlib import Path

from common import procfs
from harness.polling import wait_until
from launcher.__main__ import BACKGROUND_NICENESS, _background, _stop_group


def test_the_background_command_runs_niced_into_the_log_and_stops_with_its_children(tmp_path: Path):
    log = tmp_path / "service.log"
    started = _background(f"bash -c 'echo building; sleep 600 & echo $! > {tmp_path}/child; wait'", log)
    wait_until(lambda: (tmp_path / "child").is_file() and (tmp_path / "child").read_text().strip(), 10,
               "the command did not start", every=0.05)
    child = int((tmp_path / "child").read_text())
    assert os.getpriority(os.PRIO_PROCESS, started.pid) == os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICENESS
    assert os.getpgid(child) == started.pid != os.getpgid(0)
    _stop_group(started)
    assert started.poll() is not None
    wait_until(lambda: not procfs.running(child), 5, "the command's child outlived the stop", every=0.05)
    assert "building" in log.read_text()
