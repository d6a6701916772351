"""The one facade every transport calls: an image (URL or bytes) in, a :class:`Prediction` out.

HTTP, DeepStack and gRPC translate their wire formats into these calls and the answers back;
they reach nothing behind this class. Each call resolves its model name once, takes one of the
process's admission slots (a batch takes one for all its items), counts its latency, stages and
errors, and raises only :class:`DetectorError`, never a raw exception.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Callable
from urllib.parse import urlsplit

from common.errors import CallerGone, DetectorError, InvalidRequest, ModelNotFound, ModelNotReady
from common.metrics import ERRORS, IN_FLIGHT, REQUEST_SECONDS, STAGE_SECONDS
from common.settings import Settings
from model.detector import Detector
from model.inference_thread import Alive
from model.repository import IndexEntry, ModelRepository, ModelStatus
import serving.statistics as statistics
from serving.admission import Admission
from serving.deadline import check_arrival, remaining, within
from serving.operator import check_operator
from serving.options import DetectOptions
from serving.pipeline import Pipeline
from serving.prediction import Prediction

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = DetectOptions()
# A batch's URLs are fetched this many at a time; the model still runs one image at a time.
BATCH_FETCH_THREADS = 4


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or "-"
    except ValueError:
        return "-"


def record_error(transport: str, error: DetectorError) -> None:
    """Count and log a failed request once, naming only the URL's host (URLs may carry secrets).

    Called by each transport's one error mapping (a Flask error handler, the gRPC handler
    wrapper), so no route can forget it.
    """
    ERRORS.labels(transport, error.model, error.code).inc()
    log.warning("request failed transport=%s model=%s host=%s code=%s: %s",
                transport, error.model, error.host, error.code, error.message)


class DetectionService:
    """The request core of one serving process, over its model repository.

    Built and loaded by :mod:`serving.lifecycle`; ``loaded`` is set once loading has ended
    (warm, or failed with ``load_error``).
    """

    def __init__(self, settings: Settings, repository: ModelRepository):
        self.settings = settings
        self._repository = repository
        self._pipeline = Pipeline(settings)
        self._admission = Admission(settings.max_in_flight)
        self.load_error: str | None = None
        self.loaded = threading.Event()

    # -- the models ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The default model serves: what /predict and readiness need."""
        return self._repository.ready

    @property
    def not_ready_reason(self) -> str:
        """What a caller may know: the detail (paths, checksums) stays in the log."""
        if self.load_error:
            return "the model failed to load; the operator will find why in the service log"
        return "the model is still loading; retry shortly"

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading has ended (warm, or failed); True if it ended within ``timeout``."""
        return self.loaded.wait(timeout)

    def model(self, name: str | None = None, version: int | None = None) -> Detector:
        """The warm detector serving ``name`` (None: the default); ModelNotReady or ModelNotFound.

        With ``version``, only if that is the version serving (the inference protocol's version paths).
        """
        if self.load_error and not self._repository.ready:
            raise ModelNotReady(self.not_ready_reason)
        try:
            detector = self._repository.get(name)
        except DetectorError as error:
            error.model = self._repository.label(name)
            raise
        if version is not None and detector.version != version:
            error = ModelNotFound(f"model {detector.name!r} does not serve version {version}; it serves version "
                                  f"{detector.version}", field="version")
            error.model = detector.name
            raise error
        return detector

    def models(self) -> list[ModelStatus]:
        """Every model of the repository, its versions and what serves (GET /v1/models, ListModels)."""
        return self._repository.status()

    def model_names(self) -> list[str]:
        return self._repository.names()

    # -- the repository, for operators (the inference protocol's extensions) --------------------

    def repository_index(self) -> list[IndexEntry]:
        """Every version on disk and its state here, models unloaded by an operator included."""
        return self._repository.index()

    def load_model(self, name: str, authorization: str | None) -> None:
        """Serve ``name`` again in every process; returns once this process serves it.

        ``authorization``: the caller's ``Authorization`` value, checked against DETECTOR_ADMIN_TOKEN.
        """
        check_operator(self.settings.admin_token, authorization)
        self._repository.set_loaded(name, True)
        self.model(name)

    def unload_model(self, name: str, authorization: str | None) -> None:
        """Stop serving ``name`` in every process (not the default model); requests running finish."""
        check_operator(self.settings.admin_token, authorization)
        self._repository.set_loaded(name, False)

    def model_statistics(self, name: str | None = None, version: int | None = None
                         ) -> list[statistics.VersionStatistics]:
        """Predictions per model version, summed over every process: all versions served, or ``name``'s
        (and only ``version``, if given). An unknown name or version is ModelNotFound."""
        recorded = statistics.read()
        serving = {(status.name, status.serving_version) for status in self._repository.status()
                   if status.serving_version is not None}
        known = sorted(set(recorded) | serving)
        if name:
            if name not in {model for model, _ in known} | set(self._repository.names()):
                names = self._repository.names()
                raise ModelNotFound(f"no model named {name!r} in this service; it serves: {', '.join(names) or 'none'}",
                                    choices=names)
            known = [key for key in known if key[0] == name]
            if version is not None:
                if (name, version) not in known:
                    raise ModelNotFound(f"model {name!r} has no version {version} served since the service started",
                                        field="version")
                known = [(name, version)]
        elif version is not None:
            raise InvalidRequest("a version needs a model name")
        return [recorded.get(key) or statistics.VersionStatistics(*key) for key in known]

    # -- predictions ---------------------------------------------------------------------------

    def predict_url(
        self,
        transport: str,
        url: str,
        options: DetectOptions = DEFAULT_OPTIONS,
        timeout: float | None = None,
        alive: Alive | None = None,
        deadline: float | None = None,
    ) -> Prediction:
        """Options are checked before fetching, so a bad request never costs a download.

        ``timeout``: seconds the fetch may take; ``alive`` says whether the caller still waits: the
        model is not run for one who left; ``deadline`` (``time.monotonic()`` time: the caller's
        X-Request-Timeout-Ms or gRPC deadline) bounds the fetch too, and a forward that cannot end
        before it is skipped (serving.deadline).
        """
        return self._serve(transport, url, options,
                           lambda detector: self._from_source(detector, url, options, timeout, alive, deadline),
                           deadline=deadline)

    def predict_bytes(
        self, transport: str, data: bytes, options: DetectOptions = DEFAULT_OPTIONS, alive: Alive | None = None,
        deadline: float | None = None,
    ) -> Prediction:
        return self._serve(transport, "upload", options,
                           lambda detector: self._from_source(detector, data, options, None, alive, deadline),
                           deadline=deadline)

    def batch(
        self,
        transport: str,
        sources: list[str | bytes],
        options: DetectOptions,
        alive: Alive,
        detector: Detector | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> list[Prediction | DetectorError]:
        """Each source's prediction (a URL, str, or an image, bytes), or the error it met; one
        admission slot for all. The caller counts the errors (``record_error``): an item each, or
        the request once.

        The options and the model (unless ``detector`` is given, already resolved) are checked
        once for the whole batch; items stop being fetched once the caller has gone.
        """
        check_arrival(deadline)
        if detector is None:
            detector = self.model(options.model)
        options.checked(detector.card)

        def one(source: str | bytes) -> Prediction | DetectorError:
            try:
                if not alive():
                    raise CallerGone("the caller went away before this item was fetched")
                return self._serve(transport, "upload" if isinstance(source, bytes) else source, options,
                                   lambda resolved: self._from_source(resolved, source, options, timeout, alive,
                                                                      deadline),
                                   detector=detector, admit=False, deadline=deadline)
            except DetectorError as error:
                return error

        with self._admission.slot():
            if len(sources) == 1:  # no pool to start for one image (a camera's frame, most protocol calls)
                return [one(sources[0])]
            with ThreadPoolExecutor(max_workers=min(BATCH_FETCH_THREADS, len(sources))) as pool:
                return list(pool.map(one, sources))

    def _from_source(
        self, detector: Detector, source: str | bytes, options: DetectOptions, timeout: float | None,
        alive: Alive | None, deadline: float | None,
    ) -> Prediction:
        """``source``: a URL to fetch (within ``timeout`` and the deadline), or the image's bytes."""
        alive = within(deadline, detector, alive)
        if isinstance(source, bytes):
            return self._pipeline.predict(detector, source, options, {}, alive)
        left = remaining(deadline)
        if left is not None:
            timeout = left if timeout is None else min(timeout, left)
        data, timings = self._pipeline.fetch(source, timeout)
        return self._pipeline.predict(detector, data, options, timings, alive)

    def _serve(
        self,
        transport: str,
        source: str,
        options: DetectOptions,
        work: Callable[[Detector], Prediction],
        detector: Detector | None = None,
        admit: bool = True,
        deadline: float | None = None,
    ) -> Prediction:
        """Run ``work`` on the resolved model with its metrics; raises only :class:`DetectorError`.

        ``source`` is the image URL (logged by host only) or "upload"; ``detector``, where the caller
        resolved the model already (a batch), is used as it is.
        """
        started = time.perf_counter()
        label = "-"
        resolved: Detector | None = None
        in_flight = IN_FLIGHT.labels(transport)
        try:
            check_arrival(deadline)
            resolved = detector if detector is not None else self.model(options.model)
            label = resolved.name
            if detector is None:  # a batch checked its options once, for all its items
                options.checked(resolved.card)
            with self._admission.slot() if admit else nullcontext():
                in_flight.inc()
                try:
                    prediction = work(resolved)
                finally:
                    in_flight.dec()
        except DetectorError as error:
            # A model that could not be resolved is labelled as model() named it ("-" if unknown).
            label = error.model if label == "-" else label
            error.host, error.model = _host_of(source), label
            if resolved is not None:
                statistics.record(resolved, statistics.FAIL, time.perf_counter() - started, {})
            raise
        except Exception:
            log.exception("predict crashed transport=%s model=%s host=%s", transport, label, _host_of(source))
            error = DetectorError("internal error while processing the image")
            error.host, error.model = _host_of(source), label
            if resolved is not None:
                statistics.record(resolved, statistics.FAIL, time.perf_counter() - started, {})
            raise error from None
        finally:
            REQUEST_SECONDS.labels(transport, label).observe(time.perf_counter() - started)
        for stage, seconds in prediction.timings.items():
            STAGE_SECONDS.labels(transport, label, stage).observe(seconds)
        statistics.record(resolved, statistics.SUCCESS, time.perf_counter() - started, prediction.timings,
                          prediction.batch_size)
        return prediction
