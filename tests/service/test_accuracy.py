"""The external acceptance check, mirrored: mean score over the shared labelled photos."""

from __future__ import annotations

import json

from harness.image_server import serve_folder
from harness.predictors import evaluate, grpc_predictor, http_predictor, mean_score, score

# YOLOv5s, the offline default, scores 0.816 over the 10 public labels (docs/accuracy.md); the bar
# sits honestly below that, not at it. The external pass mark is 0.5; the CenterNet scores 0.685.
REGRESSION_BAR = 0.78


def test_score_is_the_multiset_dice_of_the_acceptance_test():
    assert score(["dog", "dog", "cat"], ["dog", "cat", "cat"]) == 2 * 2 / 6
    assert score(["person"], []) == 0.0
    assert score([], []) == 1.0
    assert score(["a", "b"], ["b", "a"]) == 1.0


def test_mean_score_over_http_and_grpc_clears_the_bar(service, shared_dir):
    labels = json.loads((shared_dir / "eval" / "labels.json").read_text())
    with serve_folder(shared_dir / "eval" / "images") as base:
        over_http = evaluate(http_predictor(service.http_url), base, labels)
        over_grpc = evaluate(grpc_predictor(service.grpc_target), base, labels)
    for name in labels:
        assert over_http[name]["predicted"] == over_grpc[name]["predicted"], name
    print({name: round(r["score"], 3) for name, r in over_http.items()})
    assert mean_score(over_http) >= REGRESSION_BAR
    assert mean_score(over_grpc) >= REGRESSION_BAR
