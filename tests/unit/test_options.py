"""Per-request options: what each model accepts, and the messages for what it does not."""

from __future__ import annotations

import pytest

from model.card import ModelCard
from exporters.coco_names import COCO_80, TORCHVISION_CATEGORIES
from model.detector import Detection
from common.errors import InvalidRequest
from serving.options import MAX_DETECTIONS, DetectOptions, known_classes


def _card(masks: bool, categories: list[str]) -> ModelCard:
    return ModelCard(
        name="test-model", architecture="-", weights="-", categories=categories, score_threshold=0.5,
        sha256="-", torch_version="-", torchvision_version="-", masks=masks,
    )


BOXES_ONLY = _card(False, list(COCO_80))
WITH_MASKS = _card(True, list(TORCHVISION_CATEGORIES))


def test_defaults_are_accepted_by_every_model():
    for card in (BOXES_ONLY, WITH_MASKS):
        assert DetectOptions().checked(card) == DetectOptions()


@pytest.mark.parametrize("threshold", [-0.01, 1.01, float("nan"), float("inf")])
def test_threshold_outside_zero_to_one_is_refused(threshold):
    with pytest.raises(InvalidRequest, match="threshold"):
        DetectOptions(threshold=threshold).checked(BOXES_ONLY)


@pytest.mark.parametrize("count", [0, -1, MAX_DETECTIONS + 1])
def test_max_detections_out_of_range_is_refused(count):
    with pytest.raises(InvalidRequest, match="max_detections"):
        DetectOptions(max_detections=count).checked(BOXES_ONLY)


def test_unknown_classes_are_named_and_the_valid_ones_listed():
    with pytest.raises(InvalidRequest) as raised:
        DetectOptions(classes=("person", "unicorn", "N/A")).checked(WITH_MASKS)
    assert "'unicorn'" in raised.value.message and "'N/A'" in raised.value.message
    assert raised.value.choices == list(COCO_80)
    assert known_classes(WITH_MASKS) == list(COCO_80)


def test_an_empty_class_list_is_refused():
    with pytest.raises(InvalidRequest, match="at least one"):
        DetectOptions(classes=()).checked(BOXES_ONLY)


def test_masks_need_a_model_with_a_mask_branch():
    with pytest.raises(InvalidRequest, match="test-model"):
        DetectOptions(masks=True).checked(BOXES_ONLY)
    assert DetectOptions(masks=True).checked(WITH_MASKS).masks


def test_select_keeps_wanted_classes_in_order_up_to_the_cap():
    found = [Detection(label, score, (0, 0, 1, 1)) for label, score in
             [("dog", 0.9), ("person", 0.8), ("dog", 0.7), ("cat", 0.6), ("dog", 0.5)]]
    picked = DetectOptions(classes=("dog", "cat"), max_detections=3).select(found)
    assert [(d.label, d.score) for d in picked] == [("dog", 0.9), ("dog", 0.7), ("cat", 0.6)]
    assert DetectOptions().select(found) == found


def test_the_api_names_exactly_torchvisions_coco_classes():
    """model.coco writes the 80 names out (the API's enum, no torchvision import); torchvision is the source."""
    from model.coco import COCO_CLASSES

    assert COCO_CLASSES == COCO_80
