"""The request core: the one facade every transport calls, and the request path behind it.

* ``service``: :class:`DetectionService` (``predict_url``, ``predict_bytes``, ``batch``,
  ``model``, ``models``) and ``record_error``, the metrics and error hygiene of every call.
* ``statistics``: predictions per model version summed over every process; ``operator``: the
  operator's token, which the repository's load and unload need.
* ``lifecycle``: start, warm-up and exit for restart of a serving process.
* The request path: ``pipeline`` fetches (``fetch``), decodes (``images``, within
  ``decode_budget``) and runs the resolved model; ``admission`` bounds what a process holds;
  ``options`` are a request's detection options; ``prediction``, ``annotate`` and ``rle`` shape
  the answers.

Transports import this package's names and ``common``; nothing from ``model``. ``Detector``,
``ModelStatus`` and ``IndexEntry`` (with ``RepositoryState``) are here as what ``model``,
``models`` and ``repository_index`` answer.
"""

from model.coco import COCO_CLASSES
from model.detector import Detector
from model.inference_thread import Alive
from model.repository import IndexEntry, ModelStatus, RepositoryState
from serving.options import MAX_DETECTIONS, DetectOptions, known_classes
from serving.prediction import Prediction
from serving.service import DEFAULT_OPTIONS, DetectionService, record_error

__all__ = ["COCO_CLASSES", "DEFAULT_OPTIONS", "MAX_DETECTIONS", "Alive", "DetectOptions", "DetectionService", "Detector",
           "IndexEntry", "ModelStatus", "RepositoryState", "Prediction", "known_classes", "record_error"]
