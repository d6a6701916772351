"""The serving processes import the runtime core only, never the build-time exporters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_serving_modules_do_not_import_the_exporters():
    probe = (
        "import sys, http_service.app, grpc_service.server; "
        "print(sorted(m for m in sys.modules if m == 'exporters' or m.startswith('exporters.')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
