"""Shared fixtures: exported models, a local image server and the running service.

The tests come in layers, one folder each, each folder also a marker (``-m unit``):

* ``unit``: no model export, no service process; under a minute in all (``make test-unit``).
* ``model``: the real models exported and run in this process (exports, ports, numerics, masks).
* ``service``: the real processes (supervisord, nginx, gunicorn, both gRPC servers) on 127.0.0.1.
* ``deploy``: what ships: Prometheus and Kubernetes files, the browser page, the Docker image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The evaluation data lives beside the repository; a clone elsewhere points at it with DETECTOR_SHARED_DIR.
SHARED = Path(os.environ.get("DETECTOR_SHARED_DIR") or REPO_ROOT.parent / "shared")
CACHE_DIR = REPO_ROOT / "artifacts" / "cache"


LAYERS = ("unit", "model", "service", "deploy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's layer."""
    for item in items:
        layer = Path(item.fspath).parent.name
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "eval" / "labels.json").is_file():
        pytest.fail(
            f"{SHARED} (the shared evaluation data beside the repository) is missing; "
            "set DETECTOR_SHARED_DIR (or make test SHARED_DIR=...) to where it is"
        )
    return SHARED


def check_photos(shared_dir: Path) -> list[Path]:
    """The photos an export's bf16 check runs on, as `make run` passes them."""
    from exporters.precision_check import photos_in

    return photos_in(shared_dir / "eval" / "images")


@pytest.fixture(scope="session")
def centernet_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The second offline pretrained detector, exported once per session (the download is cached)."""
    from exporters.builder import export_centernet

    out = tmp_path_factory.mktemp("mb3-centernet")
    export_centernet(out, CACHE_DIR, check_photos=check_photos(shared_dir))
    return out


@pytest.fixture(scope="session")
def yolov5_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline default detector (what `make run` serves here), exported once per session."""
    from exporters.builder import export_yolov5s

    out = tmp_path_factory.mktemp("yolov5s")
    export_yolov5s(out, CACHE_DIR, check_photos=check_photos(shared_dir))
    return out


@pytest.fixture(scope="session")
def image_server(shared_dir: Path):
    from harness.image_server import ImageServer

    server = ImageServer(shared_dir / "eval" / "images")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def service(yolov5_dir: Path, image_server, tmp_path_factory: pytest.TempPathFactory):
    """supervisord running both programs on free 127.0.0.1 ports, serving YOLOv5s, ready to serve."""
    from harness.service_process import ServiceProcess

    # Two gunicorn workers (the default is one): the contract's counter must add up across workers.
    process = ServiceProcess(REPO_ROOT, yolov5_dir, tmp_path_factory.mktemp("run"), {"DETECTOR_HTTP_WORKERS": "2"})
    process.start()
    yield process
    process.stop()
