"""What each repository model is under the Open Inference Protocol: its tensors, parameters and answers.

Inputs (one of them per request, a batch of B elements):

* ``IMAGE``: BYTES ``[-1]``, encoded images (JPEG, PNG, ...) under the same limits as uploads;
* ``URL``: BYTES ``[-1]``, image URLs, fetched with the same SSRF guard and allowlist.

Request parameters ``threshold``, ``max_detections``, ``classes`` (comma-separated names) and
``masks`` are /v1's options, checked by the same code. Outputs follow TensorRT's EfficientNMS
convention, K padded to the largest count in the batch (scores and boxes 0, classes -1, labels
empty): ``num_detections`` INT32 ``[B,1]``, ``detection_boxes`` FP32 ``[B,K,4]`` (x1, y1, x2, y2
in pixels of the upright original), ``detection_scores`` FP32 ``[B,K]``, ``detection_classes``
INT32 ``[B,K]`` (indices into the model's class names, as ``GET /v1/model`` lists them),
``detection_labels`` BYTES ``[B,K]``; with ``masks``, Mask R-CNN adds ``detection_masks`` BYTES
``[B,K]``, each a COCO RLE as JSON (``{"size": [h, w], "counts": "..."}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from common.errors import DetectorError, InvalidRequest, ModelNotFound
from inference_protocol.tensors import InferRequest, OutputTensor, element_count
from serving import MAX_DETECTIONS, DetectionService, DetectOptions, Detector, Prediction, known_classes

SERVER_NAME = "instance-detector"
SERVER_VERSION = "1.0.0"
PLATFORM = "pytorch_torchscript"
INPUTS = ("IMAGE", "URL")
OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes", "detection_labels")
MASKS = "detection_masks"
OUTPUT_TYPES = {"num_detections": ("INT32", [-1, 1]), "detection_boxes": ("FP32", [-1, -1, 4]),
                "detection_scores": ("FP32", [-1, -1]), "detection_classes": ("INT32", [-1, -1]),
                "detection_labels": ("BYTES", [-1, -1]), MASKS: ("BYTES", [-1, -1])}
# Parameters clients send about the exchange itself, not the model: read by the adapters, or ignored.
EXCHANGE_PARAMETERS = frozenset({"binary_data_output", "priority", "timeout", "headers"})


@dataclass(frozen=True)
class Metadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[dict[str, object]]
    outputs: list[dict[str, object]]


def metadata(service: DetectionService, detector: Detector) -> Metadata:
    """The model's tensors, datatypes and shapes (-1: variable), and its versions in the repository."""
    versions = [str(v.version) for status in service.models() if status.name == detector.name for v in status.versions]
    outputs = OUTPUTS + ((MASKS,) if detector.card.masks else ())
    return Metadata(
        name=detector.name, versions=versions or [str(detector.version or 1)], platform=PLATFORM,
        inputs=[{"name": name, "datatype": "BYTES", "shape": [-1]} for name in INPUTS],
        outputs=[{"name": name, "datatype": OUTPUT_TYPES[name][0], "shape": OUTPUT_TYPES[name][1]} for name in outputs],
    )


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f'parameter "{name}" must be a number, got {value!r}', field=name)
    return float(value)


def options(request: InferRequest) -> DetectOptions:
    """/v1's options from the request's parameters; unknown ones are refused, as /v1 refuses them."""
    parameters = {k: v for k, v in request.parameters.items() if k not in EXCHANGE_PARAMETERS}
    unknown = sorted(set(parameters) - {"threshold", "max_detections", "classes", "masks"})
    if unknown:
        raise InvalidRequest(f"unknown parameter(s) {', '.join(unknown)}; this model takes threshold, "
                             "max_detections, classes and masks", field=unknown[0])
    threshold = parameters.get("threshold")
    max_detections = parameters.get("max_detections", MAX_DETECTIONS)
    if isinstance(max_detections, bool) or not isinstance(max_detections, int):
        if not (isinstance(max_detections, float) and max_detections.is_integer()):
            raise InvalidRequest(f'parameter "max_detections" must be an integer, got {max_detections!r}',
                                 field="max_detections")
    classes = parameters.get("classes")
    if classes is not None and not isinstance(classes, str):
        raise InvalidRequest(f'parameter "classes" must be a string of comma-separated class names, got {classes!r}',
                             field="classes")
    masks = parameters.get("masks", False)
    if not isinstance(masks, bool):
        raise InvalidRequest(f'parameter "masks" must be a boolean, got {masks!r}', field="masks")
    return DetectOptions(
        model=request.model,
        threshold=None if threshold is None else _number("threshold", threshold),
        classes=None if classes is None else tuple(name.strip() for name in classes.split(",") if name.strip()),
        max_detections=int(max_detections),  # type: ignore[arg-type]
        masks=masks,
    )


def sources(request: InferRequest, max_batch: int) -> list[str | bytes]:
    """The batch's images (bytes) or URLs (str), from the one input the request gives."""
    names = [tensor.name for tensor in request.inputs]
    unknown = sorted(set(names) - set(INPUTS))
    if unknown:
        raise InvalidRequest(f"unknown input(s) {', '.join(unknown)}; this model takes IMAGE or URL", field=unknown[0])
    if len(names) != 1:
        raise InvalidRequest("give exactly one input: IMAGE (encoded images) or URL (image URLs)"
                             + (f", not {' and '.join(names)}" if names else ""), field="inputs")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidRequest(f'input "{tensor.name}" must be BYTES, got {tensor.datatype}', field=tensor.name)
    if len(tensor.shape) != 1 or tensor.shape[0] < 1:  # the metadata's [-1], as strictly as Triton holds it
        raise InvalidRequest(f'input "{tensor.name}" must have shape [B] with B >= 1, got {list(tensor.shape)}',
                             field=tensor.name)
    count = element_count(tensor.shape)
    if count > max_batch:
        raise InvalidRequest(f'input "{tensor.name}" holds {count} elements; at most {max_batch} '
                             "(DETECTOR_MAX_BATCH) a request", field=tensor.name)
    if len(tensor.elements) != count:
        raise InvalidRequest(f'input "{tensor.name}": its shape says {count} element(s), its data holds '
                             f"{len(tensor.elements)}", field=tensor.name)
    if tensor.name == "IMAGE":
        if any(not element for element in tensor.elements):
            raise InvalidRequest('input "IMAGE": an element is empty', field="IMAGE")
        return list(tensor.elements)
    try:
        return [element.decode("utf-8") for element in tensor.elements]
    except UnicodeDecodeError:
        raise InvalidRequest('input "URL": an element is not UTF-8 text', field="URL") from None


def requested_outputs(request: InferRequest, options: DetectOptions) -> list[str]:
    produced = OUTPUTS + ((MASKS,) if options.masks else ())
    if request.outputs is None:
        return list(produced)
    unknown = [name for name in request.outputs if name not in produced]
    if unknown:
        hint = ' (set the "masks" parameter)' if unknown == [MASKS] else ""
        raise InvalidRequest(f"unknown output(s) {', '.join(unknown)}{hint}; this request produces "
                             f"{', '.join(produced)}", field=unknown[0])
    return list(request.outputs)


def outputs(detector: Detector, predictions: list[Prediction], names: list[str]) -> list[OutputTensor]:
    """The EfficientNMS-style tensors of a batch, in the order of ``names``."""
    count = len(predictions)
    width = max((len(p.detections) for p in predictions), default=0)
    index = {name: i for i, name in enumerate(known_classes(detector.card))}
    boxes = np.zeros((count, width, 4), np.float32)
    scores = np.zeros((count, width), np.float32)
    classes = np.full((count, width), -1, np.int32)
    labels = np.full((count, width), b"", dtype=object)
    masks = np.full((count, width), b"", dtype=object)
    for row, prediction in enumerate(predictions):
        for column, detection in enumerate(prediction.detections):
            boxes[row, column] = prediction.image_box(detection)
            scores[row, column] = detection.score
            classes[row, column] = index.get(detection.label, -1)
            labels[row, column] = detection.label.encode()
            if MASKS in names:
                rle = prediction.image_mask_rle(detection)
                masks[row, column] = json.dumps(rle, separators=(",", ":")).encode() if rle else b""
    tensors = {
        "num_detections": np.array([[len(p.detections)] for p in predictions], np.int32).reshape(count, 1),
        "detection_boxes": boxes, "detection_scores": scores, "detection_classes": classes,
        "detection_labels": labels, MASKS: masks,
    }
    return [OutputTensor(name, OUTPUT_TYPES[name][0], tensors[name]) for name in names]


def resolve(service: DetectionService, name: str, version: str) -> Detector:
    """The detector serving ``name``, and only if ``version`` (when given) is the one serving."""
    if version and not (version.isdigit() and not version.startswith("0")):
        raise ModelNotFound(f"model {name!r} has no version {version!r}; versions are positive integers",
                            field="version")
    return service.model(name, int(version) if version else None)


def infer(service: DetectionService, transport: str, request: InferRequest, alive,
          timeout: float | None = None, deadline: float | None = None) -> tuple[Detector, list[OutputTensor]]:
    """Check the request, run its batch through the facade as one request, and shape the answer.

    The first image that fails fails the request, with its error (an image the caller sent that
    does not decode is the caller's 4xx, as on /v1).
    """
    detector = resolve(service, request.model, request.version)
    wanted = options(request)
    names = requested_outputs(request, wanted)
    items = sources(request, service.settings.max_batch)
    results = service.batch(transport, items, wanted, alive, detector=detector, timeout=timeout, deadline=deadline)
    for result in results:
        if isinstance(result, DetectorError):
            raise result
    predictions = [r for r in results if isinstance(r, Prediction)]
    return detector, outputs(detector, predictions, names)

