"""Mask R-CNN export, tested up to the network boundary (its weights cannot be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models._api as weights_api

from exporters import builder as export, maskrcnn
from model.card import MODEL_FILE, ModelCard, sha256_of
from exporters.coco_names import COCO_80, TORCHVISION_CATEGORIES
from model.coco import PLACEHOLDERS


@pytest.fixture(scope="module")
def random_export(tmp_path_factory) -> tuple[Path, dict]:
    """A random-init export plus the state_dict it was made from (seeded, so eager can rebuild it)."""
    torch.manual_seed(1234)
    eager = maskrcnn.build_eager("random")
    state = {k: v.clone() for k, v in eager.state_dict().items()}
    out = tmp_path_factory.mktemp("maskrcnn")
    weights_file = out / "weights.pt"
    torch.save(state, weights_file)
    export.export_maskrcnn(out / "model", weights_file=weights_file)
    return out, state


def _eager_from(state: dict) -> torch.nn.Module:
    model = maskrcnn.build_eager("random")
    model.load_state_dict(state)
    return model


@pytest.fixture(scope="module")
def both_on_one_image(random_export) -> tuple[dict, tuple, tuple]:
    """Eager torchvision's output, the export's forward() and its detect_masks() on one random image."""
    out, state = random_export
    scripted = torch.jit.load(str(out / "model" / MODEL_FILE))
    torch.manual_seed(0)
    image = torch.rand(3, 300, 400)
    with torch.inference_mode():
        return _eager_from(state)([image])[0], scripted(image), scripted.detect_masks(image)


def test_torchscript_gives_the_eager_model_boxes_labels_scores(both_on_one_image):
    expected, (boxes, labels, scores), _ = both_on_one_image
    assert len(boxes) > 0
    assert torch.equal(labels, expected["labels"])
    torch.testing.assert_close(boxes, expected["boxes"])
    torch.testing.assert_close(scores, expected["scores"])


def test_detect_masks_gives_the_eager_models_masks_on_the_same_detections(both_on_one_image):
    expected, _, (boxes, labels, scores, masks) = both_on_one_image
    assert masks.shape == (len(boxes), 1, 300, 400)
    assert torch.equal(labels, expected["labels"])
    torch.testing.assert_close(boxes, expected["boxes"])
    torch.testing.assert_close(scores, expected["scores"])
    torch.testing.assert_close(masks, expected["masks"])


def test_input_size_policy_is_baked_into_the_export(random_export, tmp_path):
    _, state = random_export
    weights_file = tmp_path / "weights.pt"
    torch.save(state, weights_file)
    card = export.export_maskrcnn(tmp_path / "small", weights_file=weights_file, min_size=320, max_size=480)
    assert card.masks and card.input_size == "shorter side resized to 320, longer side at most 480"
    scripted = torch.jit.load(str(tmp_path / "small" / MODEL_FILE))
    eager = maskrcnn.set_input_size(_eager_from(state), 320, 480)
    torch.manual_seed(0)
    image = torch.rand(3, 600, 800)
    with torch.inference_mode():
        expected = eager([image])[0]
        boxes, labels, _ = scripted(image)
    assert torch.equal(labels, expected["labels"])
    torch.testing.assert_close(boxes, expected["boxes"])
    with pytest.raises(ValueError):
        maskrcnn.set_input_size(_eager_from(state), 800, 400)


def test_sidecar_records_provenance_and_checksum(random_export):
    out, _ = random_export
    card = ModelCard.read(out / "model")
    assert card.name == "maskrcnn_resnet50_fpn_v2"
    assert card.weights == f"file:{out / 'weights.pt'}"
    assert card.sha256 == sha256_of(out / "model" / MODEL_FILE)
    assert card.score_threshold == 0.75
    assert card.torch_version == torch.__version__
    assert card.categories == list(TORCHVISION_CATEGORIES)


def test_label_mapping_is_torchvisions_coco_list():
    categories = maskrcnn.categories()
    assert len(categories) == 91
    assert categories[0] == "__background__" and categories[1] == "person"
    assert categories[77] == "cell phone" and categories[67] == "dining table"
    assert [c for c in categories if c not in PLACEHOLDERS] == list(COCO_80)
    assert len(COCO_80) == 80 and not PLACEHOLDERS & set(COCO_80)


def test_random_init_is_flagged(tmp_path):
    card = export.export_maskrcnn(tmp_path, random_init=True)
    assert card.random_init and card.weights == "random-init"
    assert ModelCard.read(tmp_path).random_init


def test_pretrained_export_downloads_torchvisions_coco_v1_weights(monkeypatch, random_export, tmp_path):
    """Everything up to the download: the URL asked for, then the weights it returns are used."""
    _, state = random_export
    asked = []

    def fake_download(url: str, *args, **kwargs):
        asked.append(url)
        return state

    monkeypatch.setattr(weights_api, "load_state_dict_from_url", fake_download)
    card = export.export_maskrcnn(tmp_path)
    assert asked == [maskrcnn.WEIGHTS.url]
    assert "maskrcnn_resnet50_fpn_v2_coco" in asked[0]
    assert card.weights == "MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1" and not card.random_init


def test_detect_masks_skips_detections_below_min_score(random_export, both_on_one_image):
    out, _ = random_export
    _, _, (boxes, labels, scores, masks) = both_on_one_image
    min_score = float(scores[len(scores) // 2])
    keep = scores >= min_score
    with torch.inference_mode():
        torch.manual_seed(0)
        kept = torch.jit.load(str(out / "model" / MODEL_FILE)).detect_masks(torch.rand(3, 300, 400), min_score)
    assert 0 < len(kept[0]) < len(boxes)
    for got, want in zip(kept, (boxes[keep], labels[keep], scores[keep], masks[keep])):
        torch.testing.assert_close(got, want)
