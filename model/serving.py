"""One predict call as both transports serve it: metrics, logging and error hygiene.

Adapters only translate their wire format; everything a request does between
"URL received" and "labels or typed error" happens here, once.
"""

from __future__ import annotations

import logging
import time
from typing import Callable
from urllib.parse import urlsplit

from model.errors import DetectorError
from model.config import Settings
from model.detector import Detector
from model.metrics import ERRORS, IN_FLIGHT, MODEL_INFO, REQUEST_SECONDS, STAGE_SECONDS
from model.pipeline import Pipeline, Prediction

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


def serve_predict(pipeline: Pipeline, transport: str, url: str, timeout: float | None = None) -> Prediction:
    """Run one prediction; raises only :class:`DetectorError`, never a raw exception."""
    started = time.perf_counter()
    in_flight = IN_FLIGHT.labels(transport)
    in_flight.inc()
    try:
        prediction = pipeline.predict_url(url, timeout)
    except DetectorError as exc:
        record_error(transport, exc.code, url, exc.message)
        raise
    except Exception:
        log.exception("predict crashed transport=%s host=%s", transport, _host_of(url))
        ERRORS.labels(transport, DetectorError.code).inc()
        raise DetectorError("internal error while processing the image") from None
    finally:
        in_flight.dec()
        REQUEST_SECONDS.labels(transport).observe(time.perf_counter() - started)
    for stage, seconds in prediction.timings.items():
        STAGE_SECONDS.labels(transport, stage).observe(seconds)
    return prediction


def start_pipeline(settings: Settings, on_ready: Callable[[Detector], None] | None = None) -> Pipeline:
    """A pipeline whose model loads in the background and announces itself in the metrics."""

    def _ready(detector: Detector) -> None:
        MODEL_INFO.labels(detector.card.name, detector.card.weights).set(1)
        if on_ready is not None:
            on_ready(detector)

    pipeline = Pipeline(settings)
    pipeline.load_in_background(on_ready=_ready)
    return pipeline
