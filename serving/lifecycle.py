"""A serving process's life around its :class:`DetectionService`: start, warm-up, exit for restart.

Like a Triton Python backend's ``initialize``: ``start`` builds the service, loads every model
of the repository on a background thread (each version warmed before it serves), announces the
default model in the metrics, then watches the repository. A process whose default model cannot
load exits, so supervisord restarts it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from common.metrics import MODEL_INFO, MODEL_PROCESSES_READY
from common.settings import ServerSettings, Settings
from model.detector import Detector
from model.batching import BatchPolicy
from model.core_share import CoreShare
from model.inference_thread import InferenceThread
from model.memory import IdleTrim, keep_activations_on_heap, release_warm_up_memory
from model.repository import ModelRepository, scan_repository, single_export
from serving.pipeline import max_side_for
from serving.service import DetectionService

log = logging.getLogger(__name__)

# In the run directory: every serving process's forwards, so each takes its share of the cores (model.core_share).
CORES_FILE = "cores"
# gunicorn's "worker failed to boot" code: its master stops too, so supervisord sees the failure.
LOAD_FAILED_EXIT_CODE = 3


def configure_torch(threads: int) -> None:
    """Pin intra-op threads before any parallel work; inter-op parallelism buys nothing here."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        log.debug("inter-op threads already fixed for this process")


def warm_loader(settings: Settings) -> Callable[[Path, InferenceThread], Detector]:
    """How the repository loads a version: verified, on the model thread, and warm before it serves."""

    def load(folder: Path, thread: InferenceThread) -> Detector:
        batching = BatchPolicy(settings.batch_size, settings.batch_wait_us / 1e6)
        detector = Detector.load(folder, settings.score_threshold, settings.precision, thread, batching)
        started = time.perf_counter()
        detector.warm_up()
        release_warm_up_memory()
        log.info("model %s warm (%.2fs warm-up, %d torch threads, images shrunk to at most %d px, "
                 "batches of up to %d waiting at most %d us)",
                 detector.card.name, time.perf_counter() - started, torch.get_num_threads(),
                 max_side_for(settings, detector.card), detector.batching.max_size,
                 detector.batching.wait_seconds * 1e6)
        return detector

    return load


def build(settings: Settings) -> tuple[DetectionService, ModelRepository]:
    """The service over ``settings``' repository (or its one export, DETECTOR_MODEL_DIR), and that
    repository, which only the lifecycle fills; nothing is loaded yet."""
    scan = single_export(settings.model_dir) if settings.model_dir else (
        lambda: scan_repository(settings.model_repository))
    run_dir = ServerSettings.from_env().run_dir
    share = CoreShare(run_dir / CORES_FILE if run_dir.is_dir() else None, settings.torch_threads)
    repository = ModelRepository(scan, warm_loader(settings), settings.default_model, settings.models,
                                 root=None if settings.model_dir else settings.model_repository,
                                 thread=InferenceThread(share=share, idle_trim=IdleTrim()))
    return DetectionService(settings, repository), repository


def load(service: DetectionService, repository: ModelRepository) -> None:
    """Load every model of the repository, warm: readiness means the first call is fast.

    Raises if the default model (the one ``/predict`` serves) has no version that loads.
    """
    settings = service.settings
    configure_torch(settings.torch_threads)
    keep_activations_on_heap()
    repository.refresh()
    if repository.ready:
        return
    source = settings.model_dir or settings.model_repository
    if repository.default is None:
        raise RuntimeError(f"no model in {source} (expected <name>/<version>/model.json)")
    if repository.default not in repository.names():
        raise RuntimeError(f"the default model {repository.default!r} is not in {source} "
                           f"(it has: {', '.join(repository.names()) or 'nothing'})")
    failed = [v.reason for s in repository.status() if s.name == repository.default for v in s.versions if v.reason]
    raise RuntimeError(f"no version of the default model {repository.default!r} in {source} loads: "
                       + "; ".join(failed))


def load_now(settings: Settings) -> DetectionService:
    """A service with its models loaded before it returns, for tools and tests; raises if they cannot load."""
    service, repository = build(settings)
    load(service, repository)
    service.loaded.set()
    return service


def exit_for_restart(reason: str) -> None:
    """A process whose model cannot load is of no use alive: exit so supervisord restarts it.

    A failure within supervisord's ``startsecs`` counts as a failed start, so a model that can
    never load ends with the program FATAL in ``supervisorctl status`` after ``startretries``
    tries, instead of a process that answers /healthz forever and never becomes ready.
    """
    log.critical("model failed to load (%s); exiting with status %d so supervisord restarts this process",
                 reason, LOAD_FAILED_EXIT_CODE)
    logging.shutdown()
    os._exit(LOAD_FAILED_EXIT_CODE)


def start(
    settings: Settings,
    on_ready: Callable[[Detector], None] | None = None,
    on_failure: Callable[[str], None] | None = exit_for_restart,
) -> DetectionService:
    """A service whose models load in the background, so health checks answer (not ready) meanwhile.

    Once the default model is warm, the metrics announce it and ``on_ready`` gets its detector; a
    failure goes to ``on_failure`` (by default, exit for a restart). Afterwards the repository is
    watched every ``repository_poll_seconds`` (never, at 0, or for a single export);
    ``service.wait_loaded`` returns once loading has ended.
    """
    service, repository = build(settings)

    def _load() -> None:
        try:
            load(service, repository)
            detector = repository.get()
            MODEL_INFO.labels(detector.name, detector.card.weights).set(1)
            MODEL_PROCESSES_READY.set(1)
            if on_ready is not None:
                on_ready(detector)
        except Exception as exc:  # noqa: BLE001 - reported through readiness and the log
            service.load_error = f"{exc.__class__.__name__}: {exc}"
            log.exception("the models failed to load")
            if on_failure is not None:
                on_failure(service.load_error)
            return
        finally:
            service.loaded.set()
        if settings.repository_poll_seconds > 0 and not settings.model_dir:
            repository.poll(settings.repository_poll_seconds)

    threading.Thread(target=_load, name="model-loader", daemon=True).start()
    return service
