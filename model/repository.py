"""The model repository: several exports at once, each serving its newest good version, swapped live.

Layout, as Triton, OpenVINO Model Server and TorchServe keep theirs::

    <root>/<name>/<version>/      version: a positive integer; the folder: an export as
                                  ``python -m exporters --out`` writes it

Anything else (``.staging-3``, ``latest``, files) is ignored, so a new version is written
under another name and renamed into place: a scan never sees half a folder.

Each serving process (the gunicorn worker, each gRPC server) holds one :class:`ModelRepository`
and refreshes it from its own poller thread, so both transports and every route see the same
models through one implementation. A refresh, per model:

* loads the highest version present that has not failed (checksums verified, numerics
  chosen, warmed), and only then swaps it in; requests already running finish on the old
  version, which is freed when the last of them lets go of it;
* keeps the serving version when a newer one fails to load, and records why (state, log
  line, ``app_model_load_failures_total``); the failed folder is tried again only once its
  sidecar changes;
* falls back to the highest remaining version when the serving version's folder is removed
  (that is how an operator rolls back);
* unloads a model whose folder is gone, except the default model: it keeps its last loaded
  copy, so ``/predict`` never breaks, and says so;
* leaves unloaded a model whose folder holds ``UNLOADED_FILE`` (the inference protocol's
  repository ``unload``, or an operator's ``touch``): the state lives on disk, so every
  process follows it, and a restart keeps it. :meth:`ModelRepository.set_loaded` writes it and
  touches ``<root>/CHANGED_FILE``, which every poller checks twice a second, so all processes
  follow within about that, not a full poll interval.

All models share the process's one :class:`InferenceThread`: one OpenMP team, whichever model
a request asks for. Loading runs on the poller thread; only the warm-up passes queue on the
model thread, one at a time, so a request waits at most one warm-up pass for a swap.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from model.card import CARD_FILE
from model.detector import Detector
from common.errors import Conflict, ModelNotFound, ModelNotReady
from model.inference_thread import InferenceThread
from common.metrics import MODEL_LOAD_FAILURES, MODEL_VERSIONS_LOADED

log = logging.getLogger(__name__)

VERSION_NAME = re.compile(r"[1-9][0-9]{0,8}")


class RepositoryState:
    """A version's state in one process, as listings and the repository index show it."""

    LOADING, READY, FAILED, UNLOADED = "loading", "ready", "failed", "unloaded"


LOADING, READY, FAILED, UNLOADED = RepositoryState.LOADING, RepositoryState.READY, RepositoryState.FAILED, \
    RepositoryState.UNLOADED
# With DETECTOR_DEFAULT_MODEL unset and several models present: the order `make run`'s
# MODEL_SOURCE=auto tries them in (exporters.builder.export_auto), then by name.
AUTO_ORDER = ("maskrcnn_resnet50_fpn_v2", "yolov5s", "mb3-centernet")
# In a model's folder: a version on its way, as exporters.int8_next writes it (listed as "upcoming").
UPCOMING_FILE = ".int8-next"
# In a model's folder: an operator unloaded the model (the protocol's repository extension).
UNLOADED_FILE = ".unloaded"
# In the repository's root: touched on every load or unload, so every process rescans at once.
CHANGED_FILE = ".changed"
# How often a poller looks at CHANGED_FILE between its full rescans.
CHANGE_CHECK_SECONDS = 0.5

# Versions found on disk: model name -> version -> folder.
Found = dict[str, dict[int, Path]]
# Loads and warms one version folder; raises whatever loading raised.
Loader = Callable[[Path, InferenceThread], Detector]


def scan_repository(root: Path) -> Found:
    """``<root>/<name>/<version>/`` folders holding a sidecar; an absent root holds nothing."""
    found: Found = {}
    try:
        models = [entry for entry in Path(root).iterdir() if entry.is_dir() and not entry.name.startswith(".")]
    except FileNotFoundError:
        return found
    for model_dir in models:
        try:
            versions = {int(v.name): v for v in model_dir.iterdir()
                        if v.is_dir() and VERSION_NAME.fullmatch(v.name) and (v / CARD_FILE).is_file()}
        except FileNotFoundError:  # removed while scanning
            continue
        if versions:
            found[model_dir.name] = versions
    return found


def single_export(directory: Path) -> Callable[[], Found]:
    """DETECTOR_MODEL_DIR: one export as a one-model repository, named by its sidecar, version 1."""

    def scan() -> Found:
        try:
            name = str(json.loads((Path(directory) / CARD_FILE).read_text())["name"])
        except (OSError, ValueError, KeyError, TypeError):
            name = Path(directory).name  # unreadable: loading it will fail and say why
        return {name: {1: Path(directory)}}

    return scan


def _upcoming(folder: Path | None) -> str | None:
    """What a model's folder says is on its way, if anything."""
    if folder is None:
        return None
    try:
        return (folder / UPCOMING_FILE).read_text().strip() or None
    except OSError:
        return None


def _stamp(folder: Path, name: str = CARD_FILE) -> tuple[int, int] | None:
    """What identifies a file's contents cheaply (a version folder's sidecar by default): its mtime and size."""
    try:
        stat = (folder / name).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _mark(marker: Path, loaded: bool) -> None:
    """Write or remove a model's UNLOADED_FILE."""
    if loaded:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text("unloaded through the inference protocol's repository API; delete this file, or load the "
                          "model, to serve it again\n")


def _unloaded(versions: dict[int, Path]) -> bool:
    """The model's folder (its versions' parent) says an operator unloaded it."""
    return (next(iter(versions.values())).parent / UNLOADED_FILE).exists()


@dataclass
class VersionState:
    version: int
    state: str
    reason: str = ""


@dataclass
class ServedModel:
    """One model: its versions on disk, and the detector serving it (None until one loads)."""

    name: str
    versions: dict[int, VersionState] = field(default_factory=dict)
    detector: Detector | None = None
    version: int | None = None
    # The folder is gone and this is the default model: the last loaded copy keeps serving.
    removed: bool = False
    # The model's folder (its versions' parent), where a version on its way is announced.
    folder: Path | None = None
    failed: dict[int, tuple[int, int] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexEntry:
    """One version on disk and its state in this process (the repository index)."""

    name: str
    version: int
    state: str
    reason: str = ""


@dataclass(frozen=True)
class ModelStatus:
    """A consistent snapshot of one model for listings (/v1/models, ListModels)."""

    name: str
    default: bool
    serving_version: int | None
    versions: list[VersionState]
    detector: Detector | None
    removed: bool
    # A version on its way (UPCOMING_FILE), e.g. "building: int8, as version 2 (started 10:55:01)".
    upcoming: str | None = None


class ModelRepository:
    def __init__(
        self,
        scan: Callable[[], Found],
        loader: Loader,
        default: str | None = None,
        only: Iterable[str] | None = None,
        root: Path | None = None,
        thread: InferenceThread | None = None,
    ):
        """``root``: the repository's folder, where loads and unloads are kept (None: a single export,
        which cannot be unloaded). ``thread``: the process's model thread, shared by every model."""
        self._scan = scan
        self._root = Path(root) if root is not None else None
        self._loader = loader
        self._wanted_default = default
        self._only = frozenset(only) if only else None
        self._models: dict[str, ServedModel] = {}
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.thread = thread or InferenceThread()
        self.default: str | None = default
        # CHANGED_FILE's stamp as the last refresh read it before its scan: a poller refreshes when it differs.
        self._scanned_change: tuple[int, int] | None = None

    # -- reading (request threads) ------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def label(self, name: str | None) -> str:
        """``name`` (None: the default) as a metrics label if this repository has it, else "-"."""
        with self._lock:
            wanted = name or self.default
            return wanted if wanted in self._models else "-"

    def get(self, name: str | None = None) -> Detector:
        """The detector serving ``name`` (None: the default model), or why there is none."""
        with self._lock:
            wanted = name or self.default
            entry = self._models.get(wanted) if wanted else None
            if entry is None:
                names = sorted(self._models)
                if name:
                    raise ModelNotFound(
                        f"no model named {name!r} in this service; it serves: {', '.join(names) or 'none yet'}",
                        choices=names,
                    )
                raise ModelNotReady("the model is still loading; retry shortly")
            if entry.detector is None:
                if any(v.state == LOADING for v in entry.versions.values()) or not entry.versions:
                    raise ModelNotReady(f"model {entry.name!r} is still loading; retry shortly")
                raise ModelNotReady(
                    f"model {entry.name!r} failed to load; the operator will find why in the service log"
                )
            return entry.detector

    def status(self) -> list[ModelStatus]:
        with self._lock:
            statuses = [
                (ModelStatus(
                    name=entry.name, default=entry.name == self.default, serving_version=entry.version,
                    versions=[entry.versions[v] for v in sorted(entry.versions)], detector=entry.detector,
                    removed=entry.removed,
                ), entry.folder)
                for entry in sorted(self._models.values(), key=lambda e: e.name)
            ]
        return [replace(status, upcoming=_upcoming(folder)) for status, folder in statuses]

    @property
    def ready(self) -> bool:
        """The default model serves: what /predict and readiness need."""
        with self._lock:
            entry = self._models.get(self.default) if self.default else None
            return entry is not None and entry.detector is not None

    def index(self) -> list[IndexEntry]:
        """Every version on disk (of the models this process may serve), unloaded models included."""
        entries = []
        for name, versions in sorted(self._allowed(self._scan()).items()):
            unloaded = _unloaded(versions)
            with self._lock:
                entry = self._models.get(name)
                states = dict(entry.versions) if entry is not None and not unloaded else {}
                serving = entry.version if entry is not None else None
            for version in sorted(versions):
                state = states.get(version)
                if unloaded:
                    entries.append(IndexEntry(name, version, UNLOADED, "unloaded by an operator"))
                elif state is None:
                    entries.append(IndexEntry(name, version, UNLOADED, "not scanned yet"))
                elif state.state == UNLOADED and serving is not None:
                    entries.append(IndexEntry(name, version, UNLOADED, f"version {serving} serves this model"))
                else:
                    entries.append(IndexEntry(name, version, state.state, state.reason))
        return entries

    # -- loading and unloading (an operator, through the inference protocol) --------------------

    def set_loaded(self, name: str, loaded: bool) -> None:
        """Mark ``name`` loaded or unloaded in the repository for every process, and follow it here.

        Returns once this process has loaded (or unloaded) it; the others follow within
        CHANGE_CHECK_SECONDS. Refuses the default model's unload: ``/predict`` must keep serving.
        """
        if self._root is None:
            raise Conflict("this service serves one export (DETECTOR_MODEL_DIR): its model cannot be loaded or "
                           "unloaded; serve a repository (DETECTOR_MODEL_REPOSITORY) for that")
        found = self._allowed(self._scan())
        if name not in found:
            names = sorted(found)
            raise ModelNotFound(f"no model named {name!r} in the repository; it holds: {', '.join(names) or 'none'}",
                                choices=names)
        if not loaded and name == self.default:
            raise Conflict(f"model {name!r} is the default model (/predict serves it): it cannot be unloaded; "
                           "make another model the default (DETECTOR_DEFAULT_MODEL) first")
        marker = next(iter(found[name].values())).parent / UNLOADED_FILE
        was_loaded = not marker.exists()
        try:
            _mark(marker, loaded)
            try:
                (self._root / CHANGED_FILE).write_text(f"{time.time_ns()}\n")
            except OSError:
                _mark(marker, was_loaded)  # no other process would follow: leave the disk as it was
                raise
        except OSError as exc:  # a repository baked into a read-only image, for one
            raise Conflict(f"the model repository cannot be written here ({exc.strerror}): loading and unloading "
                           "need a writable DETECTOR_MODEL_REPOSITORY") from None
        self.refresh()
        log.info("model %s %s by an operator", name, "loaded" if loaded else "unloaded")

    # -- refreshing (the poller thread) -----------------------------------------------------

    def refresh(self) -> None:
        """One pass over the repository: load what is new, fall back from what was removed."""
        with self._refreshing:
            self._scanned_change = self._changed_stamp()
            found = {name: versions for name, versions in self._allowed(self._scan()).items()
                     if not _unloaded(versions)}
            with self._lock:
                if self.default is None:
                    self.default = self._choose_default(found)
                for name in found:
                    self._models.setdefault(name, ServedModel(name))
            for name in sorted(found, key=lambda n: (n != self.default, n)):
                self._refresh_model(self._models[name], found[name])
            for name in [n for n in self.names() if n not in found]:
                self._forget(name)

    def _allowed(self, found: Found) -> Found:
        """The models DETECTOR_MODELS lets this process serve."""
        if self._only is None:
            return found
        return {name: versions for name, versions in found.items() if name in self._only}

    def _choose_default(self, found: Found) -> str | None:
        if self._wanted_default:
            return self._wanted_default
        for name in AUTO_ORDER:
            if name in found:
                return name
        return min(found) if found else None

    def _refresh_model(self, entry: ServedModel, versions: dict[int, Path]) -> None:
        with self._lock:
            if entry.removed:
                log.info("model %s is back in the repository", entry.name)
            entry.removed = False
            entry.folder = next(iter(versions.values())).parent
            self._forget_gone_versions(entry, versions)
            for version in versions:
                if version not in entry.versions:
                    entry.versions[version] = VersionState(version, UNLOADED)
        for version in sorted(versions, reverse=True):
            if version in entry.failed:
                if entry.failed[version] == _stamp(versions[version]):
                    continue  # failed, and unchanged since
                del entry.failed[version]
            serving_present = entry.version is not None and entry.version in versions
            if version == entry.version or (serving_present and version < entry.version):
                break  # the best version there is already serves
            if self._load(entry, version, versions[version]):
                break
        with self._lock:  # a version swapped out after its folder went is no longer listed
            self._forget_gone_versions(entry, versions)

    @staticmethod
    def _forget_gone_versions(entry: ServedModel, versions: dict[int, Path]) -> None:
        """Drop the states of versions whose folders are gone, but the one still serving."""
        for version in list(entry.versions):
            if version not in versions and version != entry.version:
                del entry.versions[version]
        for version in list(entry.failed):
            if version not in versions:
                del entry.failed[version]

    def _load(self, entry: ServedModel, version: int, folder: Path) -> bool:
        with self._lock:
            entry.versions[version] = VersionState(version, LOADING)
        stamp = _stamp(folder)
        try:
            detector = self._loader(folder, self.thread)
        except Exception as exc:  # noqa: BLE001 - any failure to load is this version's state, not a crash
            reason = f"{exc.__class__.__name__}: {exc}"
            with self._lock:
                entry.versions[version] = VersionState(version, FAILED, reason)
                entry.failed[version] = stamp
            MODEL_LOAD_FAILURES.labels(entry.name).inc()
            log.error("model %s version %d failed to load from %s (%s); %s", entry.name, version, folder, reason,
                      f"version {entry.version} keeps serving" if entry.version is not None else "nothing serves it")
            return False
        detector.name, detector.version = entry.name, version
        with self._lock:
            previous = entry.version
            entry.detector, entry.version = detector, version
            entry.versions[version] = VersionState(version, READY)
            if previous is not None and previous in entry.versions:
                entry.versions[previous] = VersionState(previous, UNLOADED)
        MODEL_VERSIONS_LOADED.labels(entry.name, str(version)).set(1)
        if previous is not None:
            MODEL_VERSIONS_LOADED.labels(entry.name, str(previous)).set(0)
        log.info("model %s version %d serving%s", entry.name, version,
                 f" (was version {previous}; requests already running finish on it)" if previous else "")
        return True

    def _forget(self, name: str) -> None:
        with self._lock:
            entry = self._models[name]
            if name == self.default and entry.detector is not None:
                if not entry.removed:
                    log.warning("model %s (the default) is gone from the repository; its loaded version %s keeps "
                                "serving /predict until a version is back", name, entry.version)
                entry.removed = True
                entry.versions = {v: s for v, s in entry.versions.items() if v == entry.version}
                return
            del self._models[name]
        if entry.version is not None:
            MODEL_VERSIONS_LOADED.labels(name, str(entry.version)).set(0)
        log.info("model %s is gone from the repository: unloaded (requests already running finish on it)", name)

    def poll(self, interval: float) -> threading.Thread:
        """Refresh every ``interval`` seconds, and as soon as a load or unload touches CHANGED_FILE, on a
        daemon thread that ends with the process; a failed pass is logged, not fatal.

        A change is measured against the stamp the last refresh read before its scan, not against
        the file when the thread starts: an unload made while this process was still loading (or
        between its load and this call) is followed at once, not a whole interval later.
        """

        def run() -> None:
            while True:
                due = time.monotonic() + interval
                while time.monotonic() < due and self._changed_stamp() == self._scanned_change:
                    time.sleep(min(CHANGE_CHECK_SECONDS, max(due - time.monotonic(), 0)))
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - the next pass tries again
                    log.exception("scanning the model repository failed")

        thread = threading.Thread(target=run, name="model-repository", daemon=True)
        thread.start()
        return thread

    def _changed_stamp(self) -> tuple[int, int] | None:
        return _stamp(self._root, CHANGED_FILE) if self._root is not None else None
