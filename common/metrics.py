"""Prometheus metrics shared by the HTTP and gRPC processes (multiprocess mode).

Every serving process writes its samples under its transport's directory (see
:mod:`common.metrics_dir`); the HTTP ``/metrics`` endpoint merges both
directories, so one scrape sees every gunicorn worker and the gRPC server.
gunicorn marks dead workers so their live gauges disappear.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric

from common.metrics_dir import TRANSPORTS, metrics_root

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_INFERENCE_COUNT = Counter(
    "app_http_inference_count", "POST /predict calls, counted on arrival whatever their outcome."
)
GRPC_INFERENCE_COUNT = Counter(
    "app_grpc_inference_count", "InstanceDetector/Predict calls, counted on arrival whatever their outcome."
)
# ``model`` is a model the repository serves, or "-" where a request failed before naming one it
# serves (a caller's unknown name never becomes a label: that would let callers mint series).
REQUEST_SECONDS = Histogram(
    "app_request_duration_seconds", "Whole predict request latency.", ["transport", "model"],
    buckets=_LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "app_stage_duration_seconds",
    "Time per pipeline stage (fetch, decode, queue: waiting for the model thread, inference: the model's own).",
    ["transport", "model", "stage"], buckets=_LATENCY_BUCKETS,
)
ERRORS = Counter(
    "app_request_errors", "Failed requests by error code: every route, both transports, the front's refusals.",
    ["transport", "model", "code"],
)
# Per model *version*, for the inference protocol's statistics (serving.statistics); a version is one
# the repository loaded, so the label stays bounded.
MODEL_PREDICTIONS = Summary(
    "app_model_prediction_seconds", "Predictions per model version by outcome (success, fail): count and seconds.",
    ["model", "version", "outcome"],
)
MODEL_STAGES = Summary(
    "app_model_stage_seconds", "Stages of the successful predictions per model version: count and seconds.",
    ["model", "version", "stage"],
)
MODEL_BATCHES = Summary(
    "app_model_batched_inference_seconds",
    "Successful predictions per model version by the number of images in the forward they ran in "
    "(model.batching): count and the model's seconds.", ["model", "version", "batch_size"],
)
MODEL_LAST_PREDICTION = Gauge(
    "app_model_last_prediction_timestamp_seconds", "When a model version last answered a prediction (Unix time).",
    ["model", "version"], multiprocess_mode="max",
)
MODEL_VERSIONS_LOADED = Gauge(
    "app_model_versions_loaded",
    "Serving processes with this version of this model loaded and serving (model.repository).",
    ["model", "version"], multiprocess_mode="livesum",
)
MODEL_LOAD_FAILURES = Counter(
    "app_model_load_failures", "Model versions that failed to load (bad checksum, corrupt or unsupported export).",
    ["model"],
)
IN_FLIGHT = Gauge(
    "app_requests_in_flight", "Predict requests being served.", ["transport"], multiprocess_mode="livesum"
)
MODEL_PROCESSES_READY = Gauge(
    "app_model_processes_ready",
    "Processes (gunicorn workers and the gRPC server) whose model is loaded and warm.",
    multiprocess_mode="livesum",
)
MODEL_INFO = Gauge(
    "app_model_info", "The default model each process serves (value 1).", ["model", "weights"], multiprocess_mode="max"
)


# Fixed for the process's life by prepare_dir before this module is imported; read once, not per scrape.
_METRICS_ROOT = metrics_root()


class _AllTransportsCollector:
    """One merge over every transport's files: each metric family appears exactly once.

    (A MultiProcessCollector per directory would emit every family twice,
    which Prometheus rejects as a duplicate.)
    """

    def collect(self) -> Iterable[Metric]:
        files = sorted(
            str(path) for transport in TRANSPORTS for path in (_METRICS_ROOT / transport).glob("*.db")
        )
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


def collect() -> list[Metric]:
    """Every family, merged across all serving processes as the exposition merges them."""
    return list(_AllTransportsCollector().collect())


def render() -> tuple[bytes, str]:
    """Every gunicorn worker's and the gRPC server's samples, as one exposition."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_AllTransportsCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
