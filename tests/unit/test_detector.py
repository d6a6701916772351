"""Post-processing of a detector's raw output: names, threshold, order, placeholders, integrity."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor, nn

from exporters.builder import save
from model.card import MODEL_FILE, ModelCard
from exporters.coco_names import TORCHVISION_CATEGORIES
from model.detector import Detector


class FixedOutput(nn.Module):
    """A TorchScript module that returns known raw detections, to test the mapping around it."""

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0]] * 5)
        labels = torch.tensor([1, 18, 12, 0, 77])  # person, dog, N/A, __background__, cell phone
        scores = torch.tensor([0.80, 0.95, 0.99, 0.99, 0.50])
        return boxes, labels, scores


@pytest.fixture
def fixed_dir(tmp_path):
    save(
        torch.jit.script(FixedOutput()), tmp_path, name="fixed", architecture="test double", weights="none",
        categories=list(TORCHVISION_CATEGORIES), score_threshold=0.75,
    )
    return tmp_path


def test_labels_are_named_thresholded_sorted_and_never_placeholders(fixed_dir):
    detector = Detector.load(fixed_dir)
    found = detector.detect(torch.zeros(3, 8, 8))
    assert [d.label for d in found] == ["dog", "person"]
    assert [d.score for d in found] == pytest.approx([0.95, 0.80])


def test_threshold_override_lets_lower_scores_through(fixed_dir):
    detector = Detector.load(fixed_dir, score_threshold=0.4)
    assert [d.label for d in detector.detect(torch.zeros(3, 8, 8))] == ["dog", "person", "cell phone"]


def test_a_tampered_model_file_is_refused(fixed_dir):
    with open(fixed_dir / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(RuntimeError, match="sha256"):
        Detector.load(fixed_dir)


def test_serving_a_random_init_export_logs_a_loud_warning(tmp_path, caplog):
    save(
        torch.jit.script(FixedOutput()), tmp_path, name="untrained", architecture="test double",
        weights="random-init", categories=list(TORCHVISION_CATEGORIES), score_threshold=0.75, random_init=True,
    )
    with caplog.at_level(logging.WARNING, logger="model.detector"):
        Detector.load(tmp_path)
    assert "UNTRAINED" in caplog.text
    assert ModelCard.read(tmp_path).random_init


def test_the_start_up_log_line_names_the_weights_licence(tmp_path, caplog):
    save(
        torch.jit.script(FixedOutput()), tmp_path, name="licensed", architecture="test double", weights="none",
        categories=list(TORCHVISION_CATEGORIES), score_threshold=0.75, license="AGPL-3.0: from upstream",
    )
    with caplog.at_level(logging.INFO, logger="model.detector"):
        Detector.load(tmp_path)
    assert "serving model licensed" in caplog.text and "licence: AGPL-3.0: from upstream" in caplog.text


def test_a_sidecar_written_before_licences_were_recorded_still_loads(fixed_dir):
    card = ModelCard.read(fixed_dir)
    assert card.license == ""
    assert Detector.load(fixed_dir).card.name == "fixed"
