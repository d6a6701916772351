"""Settings are defined once (common/settings.py): one loader reads them, and the document is theirs."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from common.settings import DOCUMENT, GROUPS, FetchPolicy, ServerSettings, Settings, document

REPO_ROOT = Path(__file__).resolve().parents[2]


def _variables() -> set[str]:
    return {spec.metadata["env"] for _, cls in GROUPS for spec in dataclasses.fields(cls) if "env" in spec.metadata}


def test_the_configuration_document_is_generated_from_the_definitions():
    assert DOCUMENT.read_text() == document(), "run: python -m common.settings > docs/configuration.md"


def test_every_variable_the_project_names_is_a_defined_setting():
    """A DETECTOR_ name in the code, docs or deploy files that no setting defines is a typo or a stale doc."""
    tools = {"DETECTOR_SHARED_DIR", "DETECTOR_DOCKER_IMAGE", "DETECTOR_DOCKER_ROOT"}  # the tests' and make's
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    named = set()
    for name in files:
        path = REPO_ROOT / name
        if path.suffix in {".py", ".md", ".yaml", ".yml", ".conf", ".toml", ".sh", ".template", ""} and path.is_file():
            named |= set(re.findall(r"\bDETECTOR_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")))
    assert named - _variables() - tools == set()


def test_unset_and_empty_variables_keep_the_defaults():
    empty = {name: " " for name in _variables() if name not in ("DETECTOR_RUN_DIR", "DETECTOR_DEEPSTACK_API_KEY")}
    assert Settings.from_env(empty) == Settings.from_env({}) == Settings(torch_threads=Settings().torch_threads)
    assert ServerSettings.from_env({}) == ServerSettings()


def test_values_are_parsed_by_kind_and_nested_groups_are_read():
    settings = Settings.from_env({
        "DETECTOR_MAX_IN_FLIGHT": " 4 ", "DETECTOR_MODELS": "yolov5s, mb3-centernet,", "DETECTOR_PRECISION": "INT8",
        "DETECTOR_MODEL_DIR": "/models/one", "DETECTOR_URL_ALLOWLIST": "127.0.0.1,10.0.0.0/8",
        "DETECTOR_FETCH_DEADLINE": "2.5", "DETECTOR_DEEPSTACK_API_KEY": " secret ",
    })
    assert settings.max_in_flight == 4 and settings.models == ("yolov5s", "mb3-centernet")
    assert settings.precision == "int8" and settings.model_dir == Path("/models/one")
    assert settings.fetch == FetchPolicy(deadline=2.5, allowlist=("127.0.0.1", "10.0.0.0/8"))
    assert settings.deepstack_api_key == " secret "


@pytest.mark.parametrize("name, value, message", [
    ("DETECTOR_MAX_IN_FLIGHT", "0", "DETECTOR_MAX_IN_FLIGHT must be an integer from 1 to 1024, got '0'"),
    ("DETECTOR_MAX_IN_FLIGHT", "many", "DETECTOR_MAX_IN_FLIGHT must be an integer, got 'many'"),
    ("DETECTOR_SCORE_THRESHOLD", "1.5", "DETECTOR_SCORE_THRESHOLD must be a number from 0 to 1"),
    ("DETECTOR_PRECISION", "fp16", "DETECTOR_PRECISION must be one of auto, fp32, bf16, int8"),
    ("DETECTOR_CONNECT_TIMEOUT", "0", "DETECTOR_CONNECT_TIMEOUT must be a number from 0.01 to 300 s"),
])
def test_a_malformed_or_out_of_bounds_value_names_its_variable(name, value, message):
    with pytest.raises(ValueError) as refused:
        Settings.from_env({name: value})
    assert str(refused.value).startswith(message)


def test_every_setting_has_a_description_and_the_document_lists_it():
    text = DOCUMENT.read_text()
    for _, cls in GROUPS:
        for spec in dataclasses.fields(cls):
            if "env" in spec.metadata:
                assert spec.metadata["description"], spec.name
                assert f"| `{spec.metadata['env']}` |" in text
