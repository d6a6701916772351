"""Conformance beside the real Triton: the same tritonclient calls, the same shapes, datatypes and refusals.

harness/triton_conformance.py (in .venv-peer, beside PyPI's nvidia-pytriton) starts Triton Inference
Server with a stand-in declared with this service's tensors, and makes every call against both.
Where this service deliberately answers otherwise, DIFFERENCES says so and why (and
docs/inference-protocol.md repeats it); anything else must match.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.peer_process import PEER_PYTHON, peer_env
from tests.conftest import REPO_ROOT

DOG = "darknet_dog.jpg"


def _conformance(service, shared_dir: Path) -> dict[str, dict]:
    if not PEER_PYTHON.is_file():
        pytest.fail(f"{PEER_PYTHON} is missing: make peer (make test makes it)")
    result = subprocess.run(
        [str(PEER_PYTHON), "-m", "harness.triton_conformance", "--http",
         service.http_url.removeprefix("http://"), "--grpc", service.grpc_target, "--model", "yolov5s",
         "--image", str(shared_dir / "eval" / "images" / DOG)],
        capture_output=True, text=True, timeout=600, env=peer_env(), cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return {line["call"]: line for line in map(json.loads, (l for l in result.stdout.splitlines() if l.startswith("{\"call\"")))}


# Where this service answers otherwise on purpose, and why (docs/inference-protocol.md says it too).
DIFFERENCES = {
    "http infer no inputs": "a request without inputs is the caller's mistake, 400 here; Triton hands it to the "
                            "model, whose failure it answers 500",
}
REFUSALS = ("unknown model metadata", "infer unknown model", "infer unknown version", "infer wrong datatype",
            "infer wrong shape", "infer unknown input")


@pytest.fixture(scope="module")
def compared(service, shared_dir) -> dict[str, dict]:
    return _conformance(service, shared_dir)


def test_every_call_answers_as_triton_does_but_the_documented_differences(compared):
    differing = {name: line for name, line in compared.items() if line["triton"] != line["service"]}
    assert set(differing) == set(DIFFERENCES), json.dumps(differing, indent=1)
    for transport in ("http", "grpc"):
        for call in ("server live", "server ready", "model ready", "model metadata", "infer IMAGE B=1",
                     "infer IMAGE B=4", "statistics", "repository index"):
            assert "ok" in compared[f"{transport} {call}"]["triton"], call
        assert compared[f"{transport} infer IMAGE B=4"]["service"]["ok"]["detection_boxes"] == {
            "datatype": "FP32", "rank": 3, "batch": 4}


def test_bad_requests_are_refused_by_both_with_a_reason(compared):
    for transport in ("http", "grpc"):
        for call in REFUSALS:
            line = compared[f"{transport} {call}"]
            assert "error" in line["triton"] and line["service"]["says_why"], line
    assert compared["grpc infer wrong shape"]["service"]["error"] == "INVALID_ARGUMENT"
    for name, line in compared.items():
        if "error" in line["triton"]:
            assert "error" in line["service"] and line["service"]["says_why"], line
