#!/usr/bin/env python3
"""Speed and accuracy of exported models at several input-size caps (in-process).

For every model directory and every ``--max-sides`` value, each labelled
image is shrunk so its longest side is at most that cap (what
``DETECTOR_MAX_SIDE`` does in the service), run through the detector
``--rounds`` times, and scored at the model's default threshold. Mask R-CNN
resizes again inside the model (its export's ``--min-size/--max-size``), so
compare its exports made with different sizes as separate model directories:

    python -m exporters --source maskrcnn --min-size 512 --max-size 853 --out /tmp/mrcnn-512
    python -m scripts.size_sweep --models artifacts/models/yolov5s/1 /tmp/mrcnn-512 --max-sides 1333,640 \\
        --images ../shared/eval/images --labels ../shared/eval/labels.json --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from model.detector import Detector
from serving.images import photo_tensor
from serving.lifecycle import configure_torch
from harness.predictors import score


def sweep(model_dir: Path, max_side: int, images: Path, labels: dict[str, list[str]], rounds: int) -> dict:
    detector = Detector.load(model_dir)
    detector.warm_up()
    seconds, scores = [], []
    for name, expected in labels.items():
        tensor = photo_tensor(images / name, max_side)
        for _ in range(rounds):
            started = time.perf_counter()
            found = detector.detect(tensor)
            seconds.append(time.perf_counter() - started)
        scores.append(score(expected, [d.label for d in found]))
    return {
        "model": detector.card.name,
        "model_dir": str(model_dir),
        "input_size": detector.card.input_size,
        "random_init": detector.card.random_init,
        "max_side": max_side,
        "p50_ms": statistics.median(seconds) * 1000,
        "mean_ms": statistics.fmean(seconds) * 1000,
        "mean_score": statistics.fmean(scores),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True)
    parser.add_argument("--max-sides", default="1333,800,640,512")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=3, help="inferences per image")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    configure_torch(args.threads)
    labels = json.loads(args.labels.read_text())
    rows = []
    print(f"{len(labels)} images x {args.rounds} rounds, {args.threads} torch thread(s)")
    print(f"{'model':28} {'in-model resize':48} {'max_side':>8} {'p50 ms':>8} {'mean ms':>8} {'score':>6}")
    for model_dir in args.models:
        for max_side in (int(s) for s in args.max_sides.split(",")):
            row = sweep(model_dir, max_side, args.images, labels, args.rounds)
            rows.append(row)
            name = row["model"] + (" (random init)" if row["random_init"] else "")
            print(
                f"{name:28} {row['input_size']:48} {max_side:8d} {row['p50_ms']:8.0f} {row['mean_ms']:8.0f}"
                f" {row['mean_score']:6.3f}",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
