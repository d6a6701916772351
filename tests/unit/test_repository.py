"""The model repository's rules, on folders of sidecars and a loader that stands in for torch.

What a version is, which one serves, what a failed or removed one does: model.repository's
logic, without spending a model load per case. tests/service/test_models.py runs the same rules in the
real service, with real exports, under load.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from common.errors import Conflict, ModelNotFound, ModelNotReady
from common.metrics import MODEL_LOAD_FAILURES
from model.repository import (CHANGED_FILE, FAILED, READY, UNLOADED, UNLOADED_FILE, IndexEntry, ModelRepository,
                              scan_repository, single_export)


class Loaded:
    """What the loader returns: where it came from (the repository sets name and version)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.name = ""
        self.version: int | None = None


def loader(folder: Path, thread) -> Loaded:  # noqa: ARG001 - the repository's loader signature
    card = json.loads((folder / "model.json").read_text())
    if card.get("broken"):
        raise RuntimeError(f"{folder / 'model.pt'} sha256 0000 does not match its sidecar")
    return Loaded(folder)


def add(root: Path, name: str, version: int | str, broken: bool = False) -> Path:
    """A version folder as an export leaves it (only the sidecar matters to the rules)."""
    folder = root / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"name": name, "broken": broken}))
    return folder


def repository(root: Path, default: str | None = None, only=None) -> ModelRepository:
    return ModelRepository(lambda: scan_repository(root), loader, default, only, root=root)


def states(repo: ModelRepository, name: str) -> dict[int, str]:
    return {v.version: v.state for s in repo.status() if s.name == name for v in s.versions}


def test_only_positive_integer_folders_with_a_sidecar_are_versions(tmp_path):
    for version in (1, 2, "0", "01", "-3", "latest", ".staging-4"):
        add(tmp_path, "yolov5s", version)
    (tmp_path / "yolov5s" / "5").mkdir()  # being written: no sidecar yet
    add(tmp_path, ".hidden", 1)
    (tmp_path / "notes.txt").write_text("not a model")
    assert {name: sorted(v) for name, v in scan_repository(tmp_path).items()} == {"yolov5s": [1, 2]}
    assert scan_repository(tmp_path / "absent") == {}


def test_the_highest_version_serves_and_a_new_one_is_swapped_in(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "yolov5s", 2)
    repo = repository(tmp_path)
    repo.refresh()
    in_flight = repo.get()
    assert (in_flight.name, in_flight.version) == ("yolov5s", 2)
    assert states(repo, "yolov5s") == {1: UNLOADED, 2: READY}

    staging = add(tmp_path, "yolov5s", ".staging-3")
    repo.refresh()
    assert repo.get().version == 2  # a staging folder is not a version
    os.rename(staging, tmp_path / "yolov5s" / "3")
    repo.refresh()
    assert repo.get().version == 3 and repo.get("yolov5s").version == 3
    assert states(repo, "yolov5s") == {1: UNLOADED, 2: UNLOADED, 3: READY}
    assert in_flight.version == 2  # what a running request holds is untouched


def test_a_version_that_fails_is_reported_and_the_previous_keeps_serving(tmp_path):
    add(tmp_path, "yolov5s", 1)
    repo = repository(tmp_path)
    repo.refresh()
    failures = MODEL_LOAD_FAILURES.labels("yolov5s")._value.get()
    broken = add(tmp_path, "yolov5s", 2, broken=True)
    repo.refresh()
    repo.refresh()  # unchanged since it failed: not tried again
    assert repo.get().version == 1
    [status] = repo.status()
    assert status.serving_version == 1
    assert status.versions[1].state == FAILED and "does not match its sidecar" in status.versions[1].reason
    assert MODEL_LOAD_FAILURES.labels("yolov5s")._value.get() == failures + 1

    (broken / "model.json").write_text(json.dumps({"name": "yolov5s", "broken": False, "fixed": True}))
    repo.refresh()  # the folder changed: tried again
    assert repo.get().version == 2


def test_removing_the_serving_version_rolls_back_to_the_highest_left(tmp_path):
    for version in (1, 2, 3):
        add(tmp_path, "yolov5s", version)
    repo = repository(tmp_path)
    repo.refresh()
    shutil.rmtree(tmp_path / "yolov5s" / "3")
    repo.refresh()
    assert repo.get().version == 2
    assert states(repo, "yolov5s") == {1: UNLOADED, 2: READY}


def test_a_removed_model_is_unloaded_but_the_default_keeps_its_last_copy(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 1)
    repo = repository(tmp_path, default="yolov5s")
    repo.refresh()
    other = repo.get("mb3-centernet")
    shutil.rmtree(tmp_path / "mb3-centernet")
    shutil.rmtree(tmp_path / "yolov5s")
    repo.refresh()
    with pytest.raises(ModelNotFound) as missing:
        repo.get("mb3-centernet")
    assert missing.value.choices == ["yolov5s"] and missing.value.http_status == 404
    assert other.version == 1  # a request still holding it finishes
    assert repo.get().version == 1 and repo.ready
    [status] = repo.status()
    assert status.removed and status.default and status.serving_version == 1

    add(tmp_path, "yolov5s", 2)
    repo.refresh()
    assert repo.get().version == 2 and not repo.status()[0].removed


def test_an_unknown_name_lists_the_models(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 4)
    repo = repository(tmp_path)
    repo.refresh()
    with pytest.raises(ModelNotFound) as missing:
        repo.get("yolov8")
    assert missing.value.choices == ["mb3-centernet", "yolov5s"]
    assert "yolov5s" in missing.value.message and missing.value.grpc_status == "NOT_FOUND"
    assert repo.label("yolov8") == "-" and repo.label(None) == "yolov5s"


def test_a_model_whose_every_version_failed_is_not_ready(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 1, broken=True)
    repo = repository(tmp_path)
    repo.refresh()
    with pytest.raises(ModelNotReady, match="failed to load"):
        repo.get("mb3-centernet")
    assert repo.get().name == "yolov5s"


def test_the_default_model_and_the_models_loaded(tmp_path):
    for name in ("a-custom", "mb3-centernet", "yolov5s"):
        add(tmp_path, name, 1)
    auto = repository(tmp_path)
    auto.refresh()
    assert auto.default == "yolov5s"  # MODEL_SOURCE=auto's order, not the alphabet
    chosen = repository(tmp_path, default="a-custom", only=["a-custom", "yolov5s"])
    chosen.refresh()
    assert chosen.default == "a-custom" and chosen.names() == ["a-custom", "yolov5s"]
    assert not repository(tmp_path / "empty").ready


def test_a_single_export_is_a_one_model_repository(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"name": "yolov5s"}))
    repo = ModelRepository(single_export(folder), loader)
    repo.refresh()
    assert (repo.get().name, repo.get().version, repo.default) == ("yolov5s", 1, "yolov5s")


def test_unload_and_load_keep_their_state_on_disk_for_every_process(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 1)
    add(tmp_path, "mb3-centernet", 2)
    took_the_call, other_process = repository(tmp_path, "yolov5s"), repository(tmp_path, "yolov5s")
    took_the_call.refresh()
    other_process.refresh()

    took_the_call.set_loaded("mb3-centernet", False)
    assert (tmp_path / "mb3-centernet" / UNLOADED_FILE).is_file() and (tmp_path / CHANGED_FILE).is_file()
    with pytest.raises(ModelNotFound):
        took_the_call.get("mb3-centernet")
    other_process.refresh()  # what its poller does once CHANGED_FILE moves
    with pytest.raises(ModelNotFound):
        other_process.get("mb3-centernet")
    assert repository(tmp_path, "yolov5s").index() == [  # a restarted process keeps it unloaded
        IndexEntry("mb3-centernet", 1, UNLOADED, "unloaded by an operator"),
        IndexEntry("mb3-centernet", 2, UNLOADED, "unloaded by an operator"),
        IndexEntry("yolov5s", 1, UNLOADED, "not scanned yet"),
    ]
    assert other_process.index()[-1] == IndexEntry("yolov5s", 1, READY)

    took_the_call.set_loaded("mb3-centernet", True)
    assert not (tmp_path / "mb3-centernet" / UNLOADED_FILE).exists()
    assert took_the_call.get("mb3-centernet").version == 2
    other_process.refresh()
    assert other_process.get("mb3-centernet").version == 2
    assert [(e.version, e.state, e.reason) for e in other_process.index() if e.name == "mb3-centernet"] == [
        (1, UNLOADED, "version 2 serves this model"), (2, READY, "")]


def test_the_default_model_and_unknown_names_cannot_be_unloaded(tmp_path):
    add(tmp_path, "yolov5s", 1)
    repo = repository(tmp_path, "yolov5s", only=["yolov5s"])
    add(tmp_path, "hidden-by-detector-models", 1)
    repo.refresh()
    with pytest.raises(Conflict, match="default model"):
        repo.set_loaded("yolov5s", False)
    with pytest.raises(ModelNotFound) as unknown:
        repo.set_loaded("hidden-by-detector-models", True)  # outside DETECTOR_MODELS: not this service's
    assert unknown.value.choices == ["yolov5s"]
    assert not (tmp_path / "yolov5s" / UNLOADED_FILE).exists() and repo.get().version == 1
    single = ModelRepository(single_export(tmp_path / "yolov5s" / "1"), loader)
    with pytest.raises(Conflict, match="DETECTOR_MODEL_DIR"):
        single.set_loaded("yolov5s", True)


def test_a_poller_follows_a_change_within_a_second_not_a_poll_interval(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 1)
    other_process = repository(tmp_path, "yolov5s")
    other_process.refresh()
    other_process.poll(3600.0)
    repository(tmp_path, "yolov5s").set_loaded("mb3-centernet", False)
    deadline = time.monotonic() + 10
    while "mb3-centernet" in other_process.names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other_process.names() == ["yolov5s"]


def test_an_unload_made_while_a_process_was_loading_is_followed_when_its_poller_starts(tmp_path):
    # The other process has scanned (its load) but not yet started polling when the unload lands:
    # its poller must compare against what that scan saw, not against the file as it finds it.
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 1)
    other_process = repository(tmp_path, "yolov5s")
    other_process.refresh()
    repository(tmp_path, "yolov5s").set_loaded("mb3-centernet", False)
    other_process.poll(3600.0)
    deadline = time.monotonic() + 10
    while "mb3-centernet" in other_process.names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other_process.names() == ["yolov5s"]


def test_a_repository_that_cannot_be_written_says_so_instead_of_failing(tmp_path):
    add(tmp_path, "yolov5s", 1)
    add(tmp_path, "mb3-centernet", 1)
    repo = repository(tmp_path, "yolov5s")
    repo.refresh()
    (tmp_path / CHANGED_FILE).mkdir()  # unwritable as a file, even for root (a read-only mount, in production)
    with pytest.raises(Conflict, match="cannot be written.*writable DETECTOR_MODEL_REPOSITORY"):
        repo.set_loaded("mb3-centernet", False)
    assert not (tmp_path / "mb3-centernet" / UNLOADED_FILE).exists()  # nothing half-done for the others to find
    assert repo.get("mb3-centernet").version == 1
