"""/openapi.json against the live service: schemathesis sends schema-driven requests to 127.0.0.1.

Every check schemathesis has (`--checks all`) runs, as its command line runs them: responses
with documented statuses, content types, headers and bodies; schema-valid requests accepted and
schema-violating ones refused; 405s that name the allowed methods; never a 500. What no schema
can express is declared, with the reason, in the repository's schemathesis.toml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import schemathesis

from http_service.openapi import openapi_document
from common.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Built from the code the service serves it from (a test below checks the served copy is the
# same); loading it eagerly avoids schemathesis' lazy fixture loader, which pytest 9 breaks.
schema = schemathesis.openapi.from_dict(openapi_document(Settings.from_env({})))


def test_schemathesis_with_every_check_finds_nothing(service, tmp_path):
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert command, "schemathesis is a dev dependency (requirements-dev.txt)"
    result = subprocess.run(
        [command, "run", f"{service.http_url}/openapi.json", "--checks", "all", "--seed", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env={"PATH": str(Path(sys.executable).parent),
                                                                         "HOME": str(tmp_path)},
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failure" not in summary, summary


def test_the_served_document_describes_every_route(service):
    import requests

    document = requests.get(f"{service.http_url}/openapi.json", timeout=30).json()
    assert document == schema.raw_schema
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/predict", "/v1/model", "/v1/models", "/v1/detect", "/v1/detect:batch", "/v1/detect/annotated",
        "/v1/vision/detection", "/v1/vision/custom/list", "/v1/vision/custom/{name}", "/healthz", "/readyz",
        "/metrics",
    }


def test_real_successes_match_the_document(service, image_server, shared_dir):
    """Random inputs rarely reach a 200; these requests do, for every operation that can."""
    import requests

    base = service.http_url
    dog = image_server.url("/images/darknet_dog.jpg")
    photo = (shared_dir / "eval" / "images" / "darknet_dog.jpg").read_bytes()
    calls = [
        ("/predict", "POST", requests.post(f"{base}/predict", json={"url": dog}, timeout=60)),
        ("/v1/detect", "POST", requests.post(f"{base}/v1/detect", json={"url": dog, "threshold": 0.2}, timeout=60)),
        ("/v1/detect", "POST", requests.post(f"{base}/v1/detect", files={"image": ("d.jpg", photo, "image/jpeg")},
                                             timeout=60)),
        ("/v1/detect:batch", "POST", requests.post(f"{base}/v1/detect:batch",
                                                   json={"urls": [dog, "http://10.0.0.1/"]}, timeout=60)),
        ("/v1/detect/annotated", "GET", requests.get(f"{base}/v1/detect/annotated", params={"url": dog},
                                                     timeout=60)),
        ("/v1/detect/annotated", "POST", requests.post(f"{base}/v1/detect/annotated", data=photo,
                                                       headers={"Content-Type": "image/jpeg"}, timeout=60)),
        ("/v1/model", "GET", requests.get(f"{base}/v1/model", timeout=30)),
        ("/v1/models", "GET", requests.get(f"{base}/v1/models", timeout=30)),
        ("/v1/vision/custom/list", "POST", requests.post(f"{base}/v1/vision/custom/list", timeout=30)),
        ("/v1/vision/custom/{name}", "POST", requests.post(f"{base}/v1/vision/custom/yolov5s",
                                                           files={"image": ("d.jpg", photo, "image/jpeg")},
                                                           timeout=60)),
    ]
    for path, method, response in calls:
        assert response.status_code == 200, (path, response.text)
        schema[path][method].validate_response(response)
