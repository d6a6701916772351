"""One predict call as both transports serve it: metrics, logging and error hygiene.

Adapters only translate their wire format; everything a request does between
"URL received" and "labels or typed error" happens here, once.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable
from urllib.parse import urlsplit

from model.errors import DetectorError
from model.config import Settings
from model.detector import Detector
from model.metrics import ERRORS, IN_FLIGHT, MODEL_INFO, MODEL_PROCESSES_READY, REQUEST_SECONDS, STAGE_SECONDS
from model.options import DetectOptions
from model.pipeline import DEFAULT_OPTIONS, Pipeline, Prediction

log = logging.getLogger(__name__)


def configure_logging() -> None:
    """Timestamped lines on stderr, which supervisord forwards to its own stdout."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s", force=True
    )


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or "-"
    except ValueError:
        return "-"


def record_error(transport: str, code: str, url: str, message: str) -> None:
    """Count and log a failed request once, naming only the URL's host (URLs may carry secrets)."""
    ERRORS.labels(transport, code).inc()
    log.warning("predict failed transport=%s host=%s code=%s: %s", transport, _host_of(url), code, message)


def serve(transport: str, source: str, work: Callable[[], Prediction]) -> Prediction:
    """Run one prediction with its metrics; raises only :class:`DetectorError`, never a raw exception.

    ``source`` is the image URL (logged by host only) or a description of an upload.
    """
    started = time.perf_counter()
    in_flight = IN_FLIGHT.labels(transport)
    in_flight.inc()
    try:
        prediction = work()
    except DetectorError as exc:
        record_error(transport, exc.code, source, exc.message)
        raise
    except Exception:
        log.exception("predict crashed transport=%s host=%s", transport, _host_of(source))
        ERRORS.labels(transport, DetectorError.code).inc()
        raise DetectorError("internal error while processing the image") from None
    finally:
        in_flight.dec()
        REQUEST_SECONDS.labels(transport).observe(time.perf_counter() - started)
    for stage, seconds in prediction.timings.items():
        STAGE_SECONDS.labels(transport, stage).observe(seconds)
    return prediction


def serve_predict(
    pipeline: Pipeline,
    transport: str,
    url: str,
    timeout: float | None = None,
    options: DetectOptions = DEFAULT_OPTIONS,
) -> Prediction:
    return serve(transport, url, lambda: pipeline.predict_url(url, timeout, options))


def serve_upload(pipeline: Pipeline, transport: str, data: bytes, options: DetectOptions) -> Prediction:
    return serve(transport, "upload", lambda: pipeline.predict_bytes(data, options))


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
        MODEL_INFO.labels(detector.card.name, detector.card.weights).set(1)
        MODEL_PROCESSES_READY.set(1)
        if on_ready is not None:
            on_ready(detector)

    pipeline = Pipeline(settings)
    pipeline.load_in_background(on_ready=_ready, on_failure=on_failure)
    return pipeline
