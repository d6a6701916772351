"""One predict call as both transports serve it: metrics, logging and error hygiene.

Adapters only translate their wire format; everything a request does between
"URL received" and "labels or typed error" happens here, once.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from typing import Callable
from urllib.parse import urlsplit

from model.errors import DetectorError
from model.config import Settings
from model.runtime.detector import Detector
from model.metrics import ERRORS, IN_FLIGHT, MODEL_INFO, MODEL_PROCESSES_READY, REQUEST_SECONDS, STAGE_SECONDS
from model.request.options import DetectOptions
from model.runtime.inference_thread import Alive
from model.request.pipeline import DEFAULT_OPTIONS, Pipeline, Prediction

log = logging.getLogger(__name__)


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or "-"
    except ValueError:
        return "-"


def record_error(transport: str, error: DetectorError) -> None:
    """Count and log a failed request once, naming only the URL's host (URLs may carry secrets).

    Called by each transport's one error mapping (a Flask error handler, the
    gRPC handler wrapper), so no route can forget it.
    """
    ERRORS.labels(transport, error.model, error.code).inc()
    log.warning("request failed transport=%s model=%s host=%s code=%s: %s",
                transport, error.model, error.host, error.code, error.message)


def serve(
    pipeline: Pipeline, transport: str, source: str, work: Callable[[], Prediction], admit: bool = True,
    model: str | None = None,
) -> Prediction:
    """Run one prediction with its metrics; raises only :class:`DetectorError`, never a raw exception.

    ``source`` is the image URL (logged by host only) or a description of an
    upload; ``model`` the model asked for (None: the default). ``admit`` takes one of the
    process's prediction slots first (:mod:`model.request.admission`); a batch takes one for all its items.
    """
    started = time.perf_counter()
    label = pipeline.models.label(model)
    in_flight = IN_FLIGHT.labels(transport)
    try:
        with pipeline.admission.slot() if admit else nullcontext():
            in_flight.inc()
            try:
                prediction = work()
            finally:
                in_flight.dec()
    except DetectorError as exc:
        exc.host, exc.model = _host_of(source), label
        raise
    except Exception:
        log.exception("predict crashed transport=%s model=%s host=%s", transport, label, _host_of(source))
        error = DetectorError("internal error while processing the image")
        error.host, error.model = _host_of(source), label
        raise error from None
    finally:
        REQUEST_SECONDS.labels(transport, label).observe(time.perf_counter() - started)
    for stage, seconds in prediction.timings.items():
        STAGE_SECONDS.labels(transport, label, stage).observe(seconds)
    return prediction


def serve_predict(
    pipeline: Pipeline,
    transport: str,
    url: str,
    timeout: float | None = None,
    options: DetectOptions = DEFAULT_OPTIONS,
    alive: Alive | None = None,
    admit: bool = True,
) -> Prediction:
    """``alive`` says whether the caller still waits; the model is not run for one who left."""
    return serve(pipeline, transport, url, lambda: pipeline.predict_url(url, timeout, options, alive), admit,
                 options.model)


def serve_upload(
    pipeline: Pipeline, transport: str, data: bytes, options: DetectOptions, alive: Alive | None = None
) -> Prediction:
    return serve(pipeline, transport, "upload", lambda: pipeline.predict_bytes(data, options, alive),
                 model=options.model)


# gunicorn's "worker failed to boot" code: its master stops too, so supervisord sees the failure.
LOAD_FAILED_EXIT_CODE = 3


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


def start_pipeline(
    settings: Settings,
    on_ready: Callable[[Detector], None] | None = None,
    on_failure: Callable[[str], None] = exit_for_restart,
) -> Pipeline:
    """A pipeline whose model loads in the background and announces itself in the metrics."""

    def _ready(detector: Detector) -> None:
        """``detector``: the default model's."""
        MODEL_INFO.labels(detector.name, detector.card.weights).set(1)
        MODEL_PROCESSES_READY.set(1)
        if on_ready is not None:
            on_ready(detector)

    pipeline = Pipeline(settings)
    pipeline.load_in_background(on_ready=_ready, on_failure=on_failure)
    return pipeline
