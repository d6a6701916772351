"""The protocol's model repository and statistics extensions, as Triton answers them, over the facade.

Both adapters (REST and gRPC) call these and only change the wire format:

* the repository index lists every version on disk with Triton's states (``READY``,
  ``LOADING``, ``UNAVAILABLE`` with a reason); ``load`` and ``unload`` change what every serving
  process serves, through the repository on disk (:meth:`serving.DetectionService.load_model`),
  and need the operator's token;
* statistics are counts and cumulative nanoseconds per model version, summed over every process.
  Triton's stages map to this service's: ``queue`` is the wait for the model thread,
  ``compute_input`` the decode, ``compute_infer`` the model (its pre- and post-processing and
  NMS included, so ``compute_output`` stays 0); ``success`` and ``fail`` are whole requests,
  fetching included. Requests that queue together may share a forward (model.batching):
  ``batch_stats`` counts the forwards of each size and ``execution_count`` all of them.
"""

from __future__ import annotations

from typing import Any

from common.errors import InvalidRequest, ModelNotFound
from serving import DetectionService, IndexEntry, RepositoryState
from serving.statistics import Duration

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics"]
TRITON_STATES = {RepositoryState.READY: "READY", RepositoryState.LOADING: "LOADING",
                 RepositoryState.FAILED: "UNAVAILABLE", RepositoryState.UNLOADED: "UNAVAILABLE"}
# Load and unload parameters Triton's clients send that need nothing here.
IGNORED_PARAMETERS = frozenset({"unload_dependents"})
STAGES = {"queue": "queue", "compute_input": "decode", "compute_infer": "inference"}
NS = 1_000_000_000


def index(service: DetectionService, ready_only: bool) -> list[dict[str, str]]:
    """``[{"name", "version", "state", "reason"}]``, only READY versions with ``ready_only``."""
    entries: list[IndexEntry] = service.repository_index()
    return [{"name": entry.name, "version": str(entry.version), "state": TRITON_STATES[entry.state],
             "reason": entry.reason}
            for entry in entries if not ready_only or entry.state == RepositoryState.READY]


def check_load_parameters(parameters: dict[str, Any]) -> None:
    """Triton lets a load bring its own config or files; here a model is only ever what its folder holds."""
    unsupported = sorted(set(parameters) - IGNORED_PARAMETERS)
    if unsupported:
        raise InvalidRequest(f"unsupported parameter(s) {', '.join(unsupported)}: this service loads a model only "
                             "from its folder in the repository (write a new version there instead)",
                             field="parameters")


def _duration(count: int, seconds: float) -> dict[str, int]:
    return {"count": count, "ns": int(seconds * NS)}


def _batch(size: int, predictions: Duration) -> dict[str, Any]:
    """Triton's entry for the forwards of ``size`` images, from the predictions that ran in them.

    Each of a forward's ``size`` predictions recorded the forward's time: the forwards are their
    count over ``size``, and their time the predictions' time over ``size``.
    """
    executions = _duration(round(predictions.count / size), predictions.seconds / size)
    return {"batch_size": size, "compute_input": _duration(0, 0.0), "compute_infer": executions,
            "compute_output": _duration(0, 0.0)}


def statistics(service: DetectionService, name: str, version: str) -> list[dict[str, Any]]:
    """Triton's ``model_stats`` entries for every model (no name), a model, or one of its versions."""
    if version and not (version.isdigit() and not version.startswith("0")):
        raise ModelNotFound(f"model {name!r} has no version {version!r}; versions are positive integers",
                            field="version")
    found = service.model_statistics(name or None, int(version) if version else None)
    answer = []
    for stats in found:
        inference_stats = {"success": _duration(stats.success.count, stats.success.seconds),
                           "fail": _duration(stats.fail.count, stats.fail.seconds)}
        for triton, stage in STAGES.items():
            spent = stats.stages.get(stage)
            inference_stats[triton] = _duration(spent.count, spent.seconds) if spent else _duration(0, 0.0)
        for unused in ("compute_output", "cache_hit", "cache_miss"):
            inference_stats[unused] = _duration(0, 0.0)
        batch_stats = [_batch(size, spent) for size, spent in sorted(stats.batches.items())]
        answer.append({"name": stats.name, "version": str(stats.version),
                       "last_inference": int(stats.last_prediction * 1000),
                       "inference_count": stats.success.count,
                       "execution_count": sum(entry["compute_infer"]["count"] for entry in batch_stats),
                       "inference_stats": inference_stats, "response_stats": {}, "batch_stats": batch_stats,
                       "memory_usage": []})
    return answer
