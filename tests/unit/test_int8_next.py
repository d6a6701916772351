"""The int8 body a quick first export deferred: built as the next version, announced, never rebuilt in vain.

A stand-in for the exporter writes the sidecars (the real build is tests/model/test_precision.py's);
what is checked here is which versions count as deferred, what is published, and what the
repository then lists as on its way.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from exporters import builder, int8, int8_next
from model.repository import UPCOMING_FILE, ModelRepository, scan_repository


def add(root: Path, version: int, outcome: str, name: str = "yolov5s") -> Path:
    folder = root / name / str(version)
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"name": name, "int8": {"outcome": outcome}}))
    return folder


def marker(root: Path, name: str = "yolov5s") -> str:
    return (root / name / UPCOMING_FILE).read_text()


@pytest.fixture
def export(monkeypatch):
    """Replace the YOLOv5s export: it writes a sidecar with (kept) or without (not kept) int8 packages."""
    calls: list[Path] = []
    result = {"packages": [{"file": "body-int8-640x640.so"}], "outcome": "int8: same answers as fp32"}

    def fake(out: Path, *args, **kwargs):
        calls.append(out)
        (out / "model.json").write_text(json.dumps({"name": "yolov5s", "int8": result}))
        return SimpleNamespace(name="yolov5s", int8=result)

    monkeypatch.setattr(builder, "export_yolov5s", fake)
    return SimpleNamespace(calls=calls, result=result)


def test_only_a_newest_version_that_deferred_int8_is_deferred(tmp_path):
    add(tmp_path, 1, int8.DEFERRED)
    assert int8_next.deferred(tmp_path) == {"yolov5s": 1}
    add(tmp_path, 2, "int8: same answers as fp32")
    assert int8_next.deferred(tmp_path) == {}
    add(tmp_path, 1, "not built: this CPU has none of amx_int8", name="other")
    assert int8_next.deferred(tmp_path) == {}


def test_a_kept_body_is_published_as_the_next_version_and_the_announcement_goes(tmp_path, export):
    add(tmp_path, 1, int8.DEFERRED)
    int8_next.announce(tmp_path, "yolov5s", 1)
    assert marker(tmp_path).startswith("deferred: int8, built in the background as version 2")
    assert int8_next.build_next(tmp_path, tmp_path / "cache", "registry", []) == 1
    assert sorted(scan_repository(tmp_path)["yolov5s"]) == [1, 2]
    assert not (tmp_path / "yolov5s" / UPCOMING_FILE).exists()
    assert int8_next.build_next(tmp_path, tmp_path / "cache", "registry", []) == 0 and len(export.calls) == 1


def test_a_body_not_kept_publishes_nothing_and_is_not_built_again(tmp_path, export):
    add(tmp_path, 1, int8.DEFERRED)
    export.result.clear()
    export.result["outcome"] = "not kept: int8 changed 1 answer(s)"
    assert int8_next.build_next(tmp_path, tmp_path / "cache", "registry", []) == 0
    assert sorted(scan_repository(tmp_path)["yolov5s"]) == [1]
    assert marker(tmp_path).startswith(int8_next.NOT_KEPT) and "version 1 keeps serving" in marker(tmp_path)
    assert int8_next.deferred(tmp_path) == {}
    assert [p for p in (tmp_path).iterdir() if p.name.startswith(".staging")] == []


def test_a_build_stopped_midway_leaves_it_deferred_for_the_next_start(tmp_path, monkeypatch):
    add(tmp_path, 1, int8.DEFERRED)

    def stopped(out: Path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(builder, "export_yolov5s", stopped)
    with pytest.raises(KeyboardInterrupt):
        int8_next.build_next(tmp_path, tmp_path / "cache", "registry", [])
    assert marker(tmp_path).startswith("deferred")
    assert int8_next.deferred(tmp_path) == {"yolov5s": 1}


def test_the_repository_lists_what_is_on_its_way(tmp_path):
    add(tmp_path, 1, int8.DEFERRED)
    repository = ModelRepository(lambda: scan_repository(tmp_path), lambda folder, thread: SimpleNamespace(), "yolov5s")
    repository.refresh()
    assert [s.upcoming for s in repository.status()] == [None]
    int8_next.announce(tmp_path, "yolov5s", 1)
    assert repository.status()[0].upcoming.startswith("deferred: int8")


def test_a_quick_export_defers_int8_only_where_it_could_be_built(monkeypatch, tmp_path):
    """The sidecar says deferred only where this machine has what int8 needs, and photos to check it on."""
    monkeypatch.setattr(int8, "unavailable", lambda flags: None)
    assert builder_outcome(tmp_path, [tmp_path / "photo.jpg"]) == int8.DEFERRED
    assert builder_outcome(tmp_path, []) == "not built: no check photos given"
    monkeypatch.setattr(int8, "unavailable", lambda flags: "no C++ compiler for AOTInductor (install g++)")
    assert builder_outcome(tmp_path, [tmp_path / "photo.jpg"]) == "not built: no C++ compiler for AOTInductor (install g++)"


def builder_outcome(tmp_path: Path, photos: list[Path]) -> str:
    """The int8 outcome export_yolov5s would record with defer_int8, without exporting anything."""
    captured = {}

    def save(module, out_dir, check_photos, more_files, **card):
        captured.update(more_files(out_dir)["int8"])
        return SimpleNamespace(name="yolov5s")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builder, "save", save)
        patch.setattr(builder, "fetch_model", lambda *a, **k: tmp_path)
        patch.setattr(builder, "load_graph_model", lambda path: None)
        patch.setattr(builder.yolov5, "build_scripted", lambda graph, size, square: None)
        builder.export_yolov5s(tmp_path, check_photos=photos, defer_int8=True)
    return str(captured["outcome"])
