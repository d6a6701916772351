"""Export-time proof that bf16 gives fp32's answers, before a sidecar may say ``precision: bf16``.

The exported module is loaded twice, once left in fp32 and once converted the
way a serving process puts it in bf16 (``model.precision.apply``), and both run on
a few real photos, prepared as the service prepares them. bf16 is kept only if,
on every photo, each detection at or above the model's threshold in one run has
a partner in the other: same label, box within ``box_px`` pixels, score within
``score_tol``. A detection within ``score_tol`` of the threshold may lack a
partner, since a rounding step can move it across. The outcome, with the worst
differences seen, goes into the sidecar.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Callable

import torch

from model import precision as numerics
from serving.images import photo_tensor

log = logging.getLogger(__name__)

BOX_PX = 4.0
SCORE_TOL = 0.05
MAX_PHOTOS = 8
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")

Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def photos_in(folder: Path | None) -> list[Path]:
    """Up to MAX_PHOTOS photos from ``folder``, in name order (none if there is no folder)."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[:MAX_PHOTOS]


def _copies(module: torch.jit.ScriptModule) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    loaded = []
    for _ in range(2):
        buffer.seek(0)
        loaded.append(torch.jit.load(buffer, map_location="cpu").eval())
    return loaded[0], loaded[1]


def _unpartnered(mine: Detections, theirs: Detections, threshold: float, box_px: float, score_tol: float,
                 box_rel: float = 0.0, any_score: bool = False) -> tuple[list[str], float, float]:
    """Which of ``mine`` above the threshold lack a partner in ``theirs``; worst box and score gaps.

    A partner has the same label, every box edge within ``box_px`` plus ``box_rel`` times the
    box's longer side, and a score within ``score_tol`` of it (``any_score``: any score of at
    least the threshold less ``score_tol``, i.e. still an answer). Each lost one is described as
    ``label score [x1, y1, x2, y2]`` with the label's index.
    """
    boxes, labels, scores = mine
    other_boxes, other_labels, other_scores = theirs
    lost, worst_box, worst_score = [], 0.0, 0.0
    for box, label, score in zip(boxes, labels.tolist(), scores.tolist()):
        if score < threshold:
            continue
        same = (other_labels == label).nonzero().flatten()
        if len(same):
            gaps = (other_boxes[same] - box).abs().amax(dim=1)
            best = int(gaps.argmin())
            partner_score = float(other_scores[same[best]])
            box_gap, score_gap = float(gaps[best]), abs(partner_score - score)
            allowed = box_px + box_rel * float((box[2:] - box[:2]).max())
            close = partner_score >= threshold - score_tol if any_score else score_gap <= score_tol
            if box_gap <= allowed and close:
                worst_box, worst_score = max(worst_box, box_gap), max(worst_score, score_gap)
                continue
        if score >= threshold + score_tol:
            lost.append(f"label {label} {score:.3f} {[round(v) for v in box.tolist()]}")
    return lost, worst_box, worst_score


def compare(
    reference: Callable[[torch.Tensor], Detections], candidate: Callable[[torch.Tensor], Detections],
    photos: list[Path], threshold: float, max_side: int, box_px: float, score_tol: float, box_rel: float = 0.0,
    any_score: bool = False,
) -> tuple[list[str], float, float]:
    """Both detectors on every photo ([3, H, W] in 0..1, prepared as the service prepares it).

    Returns the answers either one has and the other lacks (``photo: reference|candidate
    label score box``), and the worst box and score gaps between partners.
    """
    changed, worst_box, worst_score = [], 0.0, 0.0
    with torch.inference_mode():
        for photo in photos:
            image = photo_tensor(photo, max_side)
            ours, theirs = reference(image), candidate(image)
            for side, mine, other in (("reference", ours, theirs), ("candidate", theirs, ours)):
                lost, box_gap, score_gap = _unpartnered(mine, other, threshold, box_px, score_tol, box_rel, any_score)
                changed += [f"{photo.name}: only the {side} has {answer}" for answer in lost]
                worst_box, worst_score = max(worst_box, box_gap), max(worst_score, score_gap)
    return changed, worst_box, worst_score


def check_bf16(
    module: torch.jit.ScriptModule, bf16_mode: str, precision_module: str, threshold: float, max_side: int,
    photos: list[Path], box_px: float = BOX_PX, score_tol: float = SCORE_TOL,
) -> dict[str, object]:
    """The sidecar's ``precision`` and ``precision_check`` fields for ``module``."""
    if not photos:
        outcome = "fp32: bf16 not verified (no check photos given: python -m exporters --check-images DIR)"
        return {"precision": numerics.FP32, "precision_check": {"outcome": outcome}}
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        outcome = "fp32: bf16 not verified (this CPU cannot run oneDNN bf16)"
        return {"precision": numerics.FP32, "precision_check": {"outcome": outcome}}
    fp32, bf16 = _copies(module)
    bf16_context = numerics.apply(bf16, numerics.BF16, bf16_mode, precision_module)

    def candidate(image: torch.Tensor) -> Detections:
        with bf16_context():
            return bf16(image)

    changed, worst_box, worst_score = compare(fp32, candidate, photos, threshold, max_side, box_px, score_tol)
    agree = not changed
    summary = {
        "outcome": "bf16: same answers as fp32" if agree else f"fp32: bf16 changed {len(changed)} answer(s)",
        "changed": changed,
        "photos": [p.name for p in photos],
        "threshold": threshold,
        "tolerance": {"box_px": box_px, "score": score_tol},
        "worst_box_px": round(worst_box, 3),
        "worst_score": round(worst_score, 4),
    }
    log.info("bf16 check on %d photos: %s (worst box %.2f px, score %.4f)",
             len(photos), summary["outcome"], worst_box, worst_score)
    return {"precision": numerics.BF16 if agree else numerics.FP32, "precision_check": summary}
