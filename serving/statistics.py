"""Per model version: how many predictions, how long, in which stages; summed over every process.

Written by the facade on each prediction into the process's multiprocess metric files, and read
back from all of them, so any process answers for the whole service, as ``/metrics`` does. The
inference protocol's statistics extension (``/v2/models/{m}/stats``, ``ModelStatistics``) is a
view of these figures.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from common.metrics import MODEL_BATCHES, MODEL_LAST_PREDICTION, MODEL_PREDICTIONS, MODEL_STAGES, collect
from model.detector import Detector

SUCCESS, FAIL = "success", "fail"


@dataclass(frozen=True)
class Duration:
    count: int = 0
    seconds: float = 0.0


@dataclass
class VersionStatistics:
    """One model version's figures since the service started (the metrics files' life)."""

    name: str
    version: int
    # Unix seconds of the latest answer; 0 if none yet.
    last_prediction: float = 0.0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    # Successful predictions' stages: "fetch", "decode", "queue", "inference".
    stages: dict[str, Duration] = field(default_factory=dict)
    # Successful predictions by the number of images in their forward, with their "inference" seconds.
    batches: dict[int, Duration] = field(default_factory=dict)


def _family(metric: object) -> str:
    """A metric's family name as the merged collection names it."""
    return metric.describe()[0].name  # type: ignore[attr-defined]


def record(detector: Detector, outcome: str, seconds: float, stages: dict[str, float], batch_size: int = 0) -> None:
    """One prediction on ``detector`` (its name and version), ended in ``outcome`` after ``seconds``.

    ``batch_size``: the images in the forward it ran in (0: it did not reach one).
    """
    version = str(detector.version or 1)
    MODEL_PREDICTIONS.labels(detector.name, version, outcome).observe(seconds)
    for stage, spent in stages.items():
        MODEL_STAGES.labels(detector.name, version, stage).observe(spent)
    if batch_size:
        MODEL_BATCHES.labels(detector.name, version, str(batch_size)).observe(stages.get("inference", 0.0))
    MODEL_LAST_PREDICTION.labels(detector.name, version).set(time.time())


def read() -> dict[tuple[str, int], VersionStatistics]:
    """Every model version with a prediction recorded by any process, by (name, version)."""
    counts: dict[tuple[str, int, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    last: dict[tuple[str, int], float] = {}
    last_name = _family(MODEL_LAST_PREDICTION)
    wanted = {_family(MODEL_PREDICTIONS), _family(MODEL_STAGES), _family(MODEL_BATCHES), last_name}
    for family in collect():
        if family.name not in wanted:
            continue
        for sample in family.samples:
            labels = sample.labels
            if not labels.get("version", "").isdigit():
                continue
            key = (labels["model"], int(labels["version"]))
            if family.name == last_name:
                last[key] = max(last.get(key, 0.0), sample.value)
                continue
            kind = next(k for k in ("outcome", "stage", "batch_size") if k in labels)
            part = 0 if sample.name.endswith("_count") else 1 if sample.name.endswith("_sum") else None
            if part is not None:
                counts[(*key, kind, labels[kind])][part] += sample.value
    found: dict[tuple[str, int], VersionStatistics] = {}
    for (name, version, kind, which), (count, seconds) in counts.items():
        stats = found.setdefault((name, version), VersionStatistics(name, version))
        duration = Duration(int(count), seconds)
        if kind == "stage":
            stats.stages[which] = duration
        elif kind == "batch_size":
            stats.batches[int(which)] = duration
        elif which == SUCCESS:
            stats.success = duration
        elif which == FAIL:
            stats.fail = duration
    for key, when in last.items():
        if key in found:
            found[key].last_prediction = when
    return found
