#!/usr/bin/env python3
"""What running small frames at their own size changes, against enlarging them to the model's input.

A camera's region (Frigate's 320x320) letterboxed to the model's input size (640 for YOLOv5s)
is enlarged 2x and costs a 640 photo's forward; run at its own size (the letterbox rounded to the
stride, not enlarged, what YOLOv5s exports do now), it costs about a quarter. This measures the
answers both ways on frames cut from the evaluation photos (the centre square and the four corner
squares of 60% of the short side, each resized to ``--sizes``): agreement of the labels (F1 of
the label multisets at the model's threshold) and of the boxes (mean IoU of same-label matches,
and the share of the enlarged run's boxes found), and the forward's time both ways. The frames
have no labels; with ``--labels``, the whole labelled photos shrunk to each size are scored
against their labels both ways too (the acceptance score's F1). The TorchScript export in fp32
runs both, so only the size differs.

    python -m scripts.native_size --model artifacts/models/yolov5s/1 --images ../shared/eval/images \
        --labels ../shared/eval/labels.json --sizes 320,416
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import json
from pathlib import Path

import torch
from PIL import Image
from torchvision.ops import box_iou
from torchvision.transforms.functional import pil_to_tensor

from harness.predictors import IMAGE_SUFFIXES, score
from model.card import MODEL_FILE, ModelCard
from model.vision_ops import load_vision_ops

CORNER_SHARE = 0.6


def frames(folder: Path, side: int) -> list[torch.Tensor]:
    """Five square frames per photo at ``side`` x ``side``: [3, side, side] in 0..1."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            short = min(photo.size)
            corner = int(short * CORNER_SHARE)
            boxes = [((photo.width - short) // 2, (photo.height - short) // 2, short),
                     (0, 0, corner), (photo.width - corner, 0, corner), (0, photo.height - corner, corner),
                     (photo.width - corner, photo.height - corner, corner)]
            for left, top, size in boxes:
                square = photo.crop((left, top, left + size, top + size)).resize((side, side))
                found.append(pil_to_tensor(square).float() / 255.0)
    return found


def _run(module: torch.jit.ScriptModule, image: torch.Tensor, threshold: float
         ) -> tuple[torch.Tensor, torch.Tensor, float]:
    started = time.perf_counter()
    with torch.inference_mode():
        boxes, labels, scores = module(image)
    spent = time.perf_counter() - started
    keep = scores >= threshold
    return boxes[keep], labels[keep], spent


def _matches(boxes_a: torch.Tensor, labels_a: torch.Tensor, boxes_b: torch.Tensor, labels_b: torch.Tensor
             ) -> list[float]:
    """Greedy same-label matches at IoU >= 0.5: the IoU of each of A's boxes that found a partner."""
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return []
    ious = box_iou(boxes_a, boxes_b) * (labels_a[:, None] == labels_b[None, :])
    found, taken = [], set()
    for row in range(len(boxes_a)):
        order = torch.argsort(ious[row], descending=True).tolist()
        column = next((c for c in order if c not in taken and ious[row, c] >= 0.5), None)
        if column is not None:
            taken.add(column)
            found.append(float(ious[row, column]))
    return found


def _enlarging(module: torch.jit.ScriptModule, enlarge: bool, enlarged_size: int, side: int) -> None:
    """Make the module's next forward enlarge a ``side`` frame to its input, or keep it at its own size.

    An export with the ``enlarge`` switch (exporters.yolov5) is told so; an older one gets ``side`` as its input.
    """
    if hasattr(module, "enlarge"):
        module.enlarge = enlarge
    else:
        module.input_size = enlarged_size if enlarge else side


def scored(model_dir: Path, images: Path, labels: dict[str, list[str]], side: int) -> tuple[float, float]:
    """The mean acceptance score of the labelled photos shrunk to ``side`` on their long side: enlarged, native."""
    card = ModelCard.read(model_dir)
    module = torch.jit.load(str(model_dir / MODEL_FILE), map_location="cpu").eval()
    enlarged_size, threshold = int(module.input_size), float(card.score_threshold)
    results: dict[int, list[float]] = {enlarged_size: [], side: []}
    for name, expected in labels.items():
        with Image.open(images / name) as photo:
            photo = photo.convert("RGB")
            ratio = side / max(photo.size)
            small = photo.resize((max(1, round(photo.width * ratio)), max(1, round(photo.height * ratio))))
        image = pil_to_tensor(small).float() / 255.0
        for size in results:
            _enlarging(module, size == enlarged_size, enlarged_size, side)
            _, found, _ = _run(module, image, threshold)
            results[size].append(score(expected, [card.categories[i] for i in found.tolist()]))
    return statistics.mean(results[enlarged_size]), statistics.mean(results[side])


def compare(model_dir: Path, images: Path, side: int) -> dict:
    card = ModelCard.read(model_dir)
    module = torch.jit.load(str(model_dir / MODEL_FILE), map_location="cpu").eval()
    enlarged_size = int(module.input_size)
    threshold = float(card.score_threshold)
    f1s, ious, found_share, times = [], [], [], {"enlarged": [], "native": []}
    counts = {"enlarged": 0, "native": 0}
    for frame in frames(images, side):
        _enlarging(module, True, enlarged_size, side)
        boxes_a, labels_a, spent_a = _run(module, frame, threshold)
        _enlarging(module, False, enlarged_size, side)
        boxes_b, labels_b, spent_b = _run(module, frame, threshold)
        times["enlarged"].append(spent_a)
        times["native"].append(spent_b)
        counts["enlarged"] += len(labels_a)
        counts["native"] += len(labels_b)
        f1s.append(score(labels_a.tolist(), labels_b.tolist()))
        matched = _matches(boxes_a, labels_a, boxes_b, labels_b)
        ious.extend(matched)
        if len(labels_a):
            found_share.append(len(matched) / len(labels_a))
    return {"side": side, "frames": len(f1s), "label_f1": statistics.mean(f1s),
            "frames_identical_labels": sum(f == 1.0 for f in f1s) / len(f1s),
            "boxes_found": statistics.mean(found_share) if found_share else 1.0,
            "matched_iou": statistics.mean(ious) if ious else None,
            "detections_enlarged": counts["enlarged"], "detections_native": counts["native"],
            "ms_enlarged": statistics.median(times["enlarged"]) * 1000,
            "ms_native": statistics.median(times["native"]) * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="an export folder (model.json, model.pt)")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--sizes", default="320,416")
    parser.add_argument("--labels", type=Path, help="also score the labelled photos shrunk to each size")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_vision_ops()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    print(f"{cpu}; {args.model}; fp32 TorchScript, {args.threads} threads")
    print(f"{'side':>5} {'frames':>6} {'label F1':>8} {'same labels':>11} {'boxes found':>11} {'IoU':>5} "
          f"{'dets 640':>8} {'dets own':>8} {'ms 640':>7} {'ms own':>7}")
    for side in (int(s) for s in args.sizes.split(",")):
        row = compare(args.model, args.images, side)
        iou = f"{row['matched_iou']:.3f}" if row["matched_iou"] is not None else "-"
        print(f"{row['side']:>5} {row['frames']:>6} {row['label_f1']:>8.3f} {row['frames_identical_labels']:>11.1%} "
              f"{row['boxes_found']:>11.1%} {iou:>5} {row['detections_enlarged']:>8} {row['detections_native']:>8} "
              f"{row['ms_enlarged']:>7.1f} {row['ms_native']:>7.1f}")
    if args.labels:
        labels = json.loads(args.labels.read_text())
        print(f"the {len(labels)} labelled photos shrunk to each size, acceptance score: enlarged / native")
        for side in (int(s) for s in args.sizes.split(",")):
            enlarged, native = scored(args.model, args.images, labels, side)
            print(f"{side:>5} {enlarged:.3f} / {native:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
