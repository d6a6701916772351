"""The serving processes import the runtime core only: never the build-time exporters, nor torchvision's Python package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _serving_imports(package: str) -> list[str]:
    """The modules of ``package`` that importing both serving programs loads, in a fresh interpreter."""
    probe = (
        "import sys, http_service.app, grpc_service.server; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] == {package!r}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip())


def test_serving_modules_do_not_import_the_exporters():
    assert _serving_imports("exporters") == []


def test_serving_modules_do_not_import_torchvision():
    """torchvision's Python package costs 87 MB per process; the service needs only its operators."""
    assert _serving_imports("torchvision") == []


def test_a_loaded_export_runs_torchvision_operators_without_the_package(yolov5_dir: Path, shared_dir: Path):
    """The export's graph calls torchvision::nms: loading registers it from the extension library alone."""
    photo = shared_dir / "eval" / "images" / "darknet_dog.jpg"
    probe = (
        "import sys; from pathlib import Path; "
        "from model.detector import Detector; from serving.images import photo_tensor; "
        f"d = Detector.load(Path({str(yolov5_dir)!r}), precision='fp32'); "
        f"print(sorted(x.label for x in d.detect(photo_tensor(Path({str(photo)!r}), 640)))); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    labels, modules = result.stdout.strip().splitlines()[-2:]
    assert "dog" in labels and "bicycle" in labels
    assert modules == "[]"
