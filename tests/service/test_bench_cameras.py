"""scripts/bench_cameras.py runs against the real service and accounts for every frame it sent.

A benchmark prints numbers and asserts no speed; what is checked here is that its counts add up,
with a timeout long enough that every frame is answered on any machine.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_every_frame_is_sent_answered_and_counted(service, shared_dir):
    result = subprocess.run(
        [sys.executable, "-m", "scripts.bench_cameras", "--http", service.http_url, "--images",
         str(shared_dir / "eval" / "images"), "--cameras", "1,2", "--seconds", "3", "--timeout", "30"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"], result.stdout
    for cameras, sent, in_time, share, _fps, _p50, cancelled, deadline, forwards, nobody in rows:
        assert int(sent) == int(in_time) > 0 and share == "100.0%", result.stdout
        assert (cancelled, deadline, nobody) == ("0", "0", "0") and int(forwards) == int(sent), result.stdout
