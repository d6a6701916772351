"""A model that cannot load: the processes exit, supervisord retries, then marks them FATAL."""

from __future__ import annotations

import shutil
import time

from model.card import MODEL_FILE
from tests.conftest import REPO_ROOT
from harness.service_process import ServiceProcess


def test_a_model_that_cannot_load_ends_fatal_with_the_reason_logged(yolov5_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(yolov5_dir, broken)
    with open(broken / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")  # the sidecar's sha256 no longer matches
    service = ServiceProcess(REPO_ROOT, broken, tmp_path / "run")
    (tmp_path / "run").mkdir()
    service.launch()
    try:
        deadline = time.monotonic() + 150
        status = ""
        while time.monotonic() < deadline:
            status = service.supervisorctl("status")
            if status.count("FATAL") == 3:  # http, grpc and grpc2: every program that loads the model
                break
            time.sleep(2)
        assert status.count("FATAL") == 3, status + service.logs()
        logs = service.logs()
        assert "model failed to load" in logs and "does not match its sidecar" in logs
        assert "exiting with status 3 so supervisord restarts this process" in logs
        assert not service.http_ready() and not service.grpc_serving()
    finally:
        service.stop()
