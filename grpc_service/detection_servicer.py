"""gRPC adapter for ``detection.v1.Detector``: structured detections beside the untouched Predict.

Options are validated by the shared core (``DetectOptions.checked``), so a
request refused over HTTP is refused here with the same message, as
INVALID_ARGUMENT; errors become statuses in :mod:`grpc_service.handlers`.
"""

from __future__ import annotations

import grpc

from grpc_service.handlers import deadline_of
from serving import MAX_DETECTIONS, DetectionService, DetectOptions, Detector, Prediction, known_classes
from proto import detection_pb2, detection_pb2_grpc


def model_info(detector: Detector, details: bool = True) -> detection_pb2.ModelInfo:
    """The served model; its class list and precision reason only for GetModel (``details``).

    As /v1/model has them and /v1/detect does not.
    """
    card = detector.card
    return detection_pb2.ModelInfo(
        name=detector.name,
        version=detector.version or 0,
        weights=card.weights,
        random_init=card.random_init,
        masks_available=card.masks,
        default_threshold=detector.score_threshold,
        classes=known_classes(card) if details else [],
        license=card.license,
        precision=detector.precision,
        precision_reason=detector.precision_reason if details else "",
    )


def options_from(request: detection_pb2.DetectRequest) -> DetectOptions:
    return DetectOptions(
        model=request.model or None,
        threshold=request.threshold if request.HasField("threshold") else None,
        classes=tuple(request.classes) or None,
        max_detections=request.max_detections if request.HasField("max_detections") else MAX_DETECTIONS,
        masks=request.masks,
    )


def listing(service: DetectionService) -> detection_pb2.ListModelsResponse:
    """Every model of the repository, as ``GET /v1/models`` lists them."""
    models = []
    for status in service.models():
        models.append(detection_pb2.ModelListing(
            name=status.name,
            default=status.default,
            serving_version=status.serving_version or 0,
            versions=[detection_pb2.ModelVersion(version=v.version, state=v.state, reason=v.reason)
                      for v in status.versions],
            info=model_info(status.detector, details=False) if status.detector is not None else None,
            removed=status.removed,
            upcoming=status.upcoming or "",
        ))
    return detection_pb2.ListModelsResponse(models=models)


def response_from(prediction: Prediction, options: DetectOptions) -> detection_pb2.DetectResponse:
    detector = prediction.detector
    detections = []
    for found in prediction.detections:
        x1, y1, x2, y2 = prediction.image_box(found)
        item = detection_pb2.Detection(
            label=found.label, score=found.score, box=detection_pb2.Box(x1=x1, y1=y1, x2=x2, y2=y2)
        )
        rle = prediction.image_mask_rle(found)
        if rle is not None:
            height, width = rle["size"]  # type: ignore[misc]
            item.mask.CopyFrom(detection_pb2.Mask(height=height, width=width, counts=str(rle["counts"])))
        detections.append(item)
    width, height = prediction.original_size
    return detection_pb2.DetectResponse(
        model=model_info(detector, details=False),
        image=detection_pb2.ImageSize(width=width, height=height),
        threshold=detector.score_threshold if options.threshold is None else options.threshold,
        detections=detections,
        timing_ms={stage: round(seconds * 1000, 1) for stage, seconds in prediction.timings.items()},
    )


class DetectorServicer(detection_pb2_grpc.DetectorServicer):
    def __init__(self, service: DetectionService):
        self.service = service

    def Detect(self, request: detection_pb2.DetectRequest, context: grpc.ServicerContext):  # noqa: N802
        options = options_from(request)
        prediction = self.service.predict_url(
            "grpc", request.url, options, alive=context.is_active, deadline=deadline_of(context)
        )
        return response_from(prediction, options)

    def GetModel(self, request: detection_pb2.GetModelRequest, context: grpc.ServicerContext):  # noqa: N802
        return model_info(self.service.model(request.name or None))

    def ListModels(self, request: detection_pb2.ListModelsRequest, context: grpc.ServicerContext):  # noqa: N802
        return listing(self.service)
