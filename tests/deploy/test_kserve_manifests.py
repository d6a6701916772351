"""deploy/kserve/: a ServingRuntime and an InferenceService, checked offline against KServe's API types.

harness/kserve_manifests.py runs in .venv-clients (the kserve SDK pins protobuf 6); no cluster is
called. Broken copies must fail it, so the check is seen to check. The rest ties the manifests to
this service: the image's ports and user, and probe paths the service answers.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

KSERVE_DIR = REPO_ROOT / "deploy" / "kserve"
CLIENTS_PYTHON = REPO_ROOT / ".venv-clients" / "bin" / "python"


def _validate(*paths: Path) -> subprocess.CompletedProcess:
    if not CLIENTS_PYTHON.is_file():
        pytest.fail(f"{CLIENTS_PYTHON} is missing: make clients (make test makes it)")
    return subprocess.run([str(CLIENTS_PYTHON), str(REPO_ROOT / "harness" / "kserve_manifests.py"), *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def _manifests() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(KSERVE_DIR.glob("*.yaml"))}


def test_the_manifests_validate_against_kserves_api_types():
    result = _validate(*sorted(KSERVE_DIR.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split("\n")[:2] == ["ok InferenceService/instance-detector",
                                             "ok ServingRuntime/instance-detector"]


def _broken(manifests: dict[str, dict], break_it) -> dict[str, dict]:
    copy = yaml.safe_load(yaml.safe_dump(manifests))
    break_it(copy["servingruntime.yaml"]["spec"], copy["inferenceservice.yaml"]["spec"])
    return copy


BREAKAGES = {
    "a misspelt field": (lambda runtime, service: service["predictor"]["model"].update(protocolVersions="v2"),
                         r"protocolVersions: no such field"),
    "a wrong type": (lambda runtime, service: runtime["containers"][0]["ports"][0].update(containerPort="8080"),
                     r"containerPort: expected int"),
    # The kubernetes client's models are pydantic ("Field required"); older ones had setters ("must not be `None`").
    "a required field missing": (lambda runtime, service: runtime["containers"][0].pop("name"),
                                 r"containers\[0\]: V1Container: .*name.*(Field required|must not be `None`)"),
    "another runtime's name": (lambda runtime, service: service["predictor"]["model"].update(runtime="triton"),
                               r"runtime 'triton' is not among"),
    "a protocol the runtime lacks": (lambda runtime, service: runtime.update(protocolVersions=["v1"]),
                                     r"protocol v2 not in"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_copy_fails_and_says_where(breakage, tmp_path):
    break_it, expected = BREAKAGES[breakage]
    for name, manifest in _broken(_manifests(), break_it).items():
        (tmp_path / name).write_text(yaml.safe_dump(manifest))
    result = _validate(*sorted(tmp_path.glob("*.yaml")))
    assert result.returncode == 1, result.stdout
    assert re.search(expected, result.stdout, re.S), result.stdout


def test_the_runtime_serves_this_image_on_its_ports_as_its_user_with_probes_it_answers():
    runtime = _manifests()["servingruntime.yaml"]["spec"]
    assert runtime["protocolVersions"][0] == "v2"
    [container] = runtime["containers"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    exposed = {int(port) for port in re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split()}
    assert {port["containerPort"] for port in container["ports"]} <= exposed
    uid = re.search(r"useradd [^\n]*--uid (\d+)", dockerfile).group(1)
    assert container["securityContext"]["runAsUser"] == int(uid) and container["securityContext"]["runAsNonRoot"]
    from common.settings import Settings
    from http_service.app import create_app
    from serving.lifecycle import build

    service, _ = build(Settings.from_env({}))  # nothing loaded: only the routes the probes hit matter
    routes = {rule.rule for rule in create_app(service).url_map.iter_rules()}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes, probe
        assert container[probe]["httpGet"]["port"] in exposed
