#!/usr/bin/env python3
"""Mean acceptance score of an exported model at a range of score thresholds (in-process).

Runs the model once per image and re-thresholds its raw detections, so a sweep
costs one inference per image. Used to pick the sidecar's default threshold:

    python -m scripts.threshold_sweep --model artifacts/models/yolov5s/1 \\
        --images ../shared/eval/images --labels ../shared/eval/labels.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.coco import PLACEHOLDERS
from model.detector import Detector
from serving.images import decode_image, limit_side, to_tensor
from harness.predictors import score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--max-side", type=int, help="pre-shrink to this longest side (default: the sidecar's)")
    parser.add_argument("--thresholds", default="0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.6,0.75")
    args = parser.parse_args(argv)
    labels = json.loads(args.labels.read_text())
    detector = Detector.load(args.model)
    names = detector.card.categories
    max_side = args.max_side or detector.card.max_side
    raw = {}
    for name in labels:
        image = limit_side(decode_image((args.images / name).read_bytes(), 10**9), max_side)
        boxes, classes, scores = detector.raw(to_tensor(image))
        raw[name] = [(names[c], s) for c, s in zip(classes.tolist(), scores.tolist()) if names[c] not in PLACEHOLDERS]
    print(f"model {detector.card.name}, {len(labels)} labelled images, longest side {max_side}")
    print("threshold  mean   " + "  ".join(labels))
    for threshold in (float(t) for t in args.thresholds.split(",")):
        per_image = [score(labels[n], [label for label, s in raw[n] if s >= threshold]) for n in labels]
        cells = "  ".join(f"{s:.3f}".ljust(len(n)) for s, n in zip(per_image, labels))
        print(f"{threshold:9.2f}  {sum(per_image) / len(per_image):.3f}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
