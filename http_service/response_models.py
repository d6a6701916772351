"""The HTTP answers, defined once: pydantic models that build every JSON body and write /openapi.json's schemas.

:mod:`http_service.responses` fills these models and dumps them (``exclude_unset``: a field
left out is absent from the answer, a field set to None is ``null``);
:mod:`http_service.openapi` takes their JSON Schema. The request side is
:mod:`http_service.request_fields`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

Precision = Literal["fp32", "bf16", "int8"]


class Answer(BaseModel):
    """An answer the service builds: validated as it is built (a field out of its bounds is our bug, a 500),
    and dumped with exactly the fields set."""

    model_config = ConfigDict(extra="forbid")

    def body(self) -> dict:
        return self.model_dump(exclude_unset=True)


class PredictResponse(Answer):
    objects: list[str] = Field(description="one COCO class name per detected instance, highest score first")


class ErrorDetail(Answer):
    code: str
    message: str
    choices: list[str] | SkipJsonSchema[None] = Field(None, description="the accepted values, where the caller "
                                                                         "picked one that is not among them")


class ErrorResponse(Answer):
    error: ErrorDetail


class Mask(Answer):
    """COCO run-length encoding (pycocotools.mask.decode reads it)."""

    size: list[int] = Field(min_length=2, max_length=2, description="[height, width]")
    counts: str


class Detection(Answer):
    label: str
    score: float = Field(ge=0, le=1)
    box: list[float] = Field(min_length=4, max_length=4,
                             description="[x1, y1, x2, y2] in pixels of the upright original image")
    mask: Mask | SkipJsonSchema[None] = None


class ModelInfo(Answer):
    name: str
    version: int | None = Field(description="the repository version serving")
    weights: str
    license: str = Field(description="who may use the weights and on what terms")
    precision: Precision = Field(description="the numerics this process runs the model in, chosen for its CPU")
    random_init: bool
    masks_available: bool
    default_threshold: float


class ModelDetails(ModelInfo):
    input_size: str
    precision_reason: str = Field(description="why this precision, on this CPU")
    classes: list[str]


class ImageSize(Answer):
    width: int
    height: int


class DetectResponse(Answer):
    model: ModelInfo
    image: ImageSize
    threshold: float
    detections: list[Detection]
    timing_ms: dict[str, float]


class BatchDetection(DetectResponse):
    """A batch item that succeeded: its URL beside the detections."""

    url: str


class BatchError(ErrorResponse):
    """A batch item that failed: its URL beside the error."""

    url: str


class BatchResponse(Answer):
    results: list[BatchDetection | BatchError] = Field(
        description="In request order: a DetectResponse plus its url, or an Error plus its url")


class VersionEntry(Answer):
    version: int = Field(ge=1)
    state: Literal["loading", "ready", "failed", "unloaded"]
    reason: str | SkipJsonSchema[None] = Field(None, description="why it failed")


class ModelListing(Answer):
    name: str
    default: bool = Field(description="the model /predict serves")
    serving_version: int | None
    versions: list[VersionEntry]
    removed: bool | SkipJsonSchema[None] = Field(
        None, description="its folder is gone; the default model keeps its last loaded copy")
    license: str | SkipJsonSchema[None] = None
    precision: Precision | SkipJsonSchema[None] = None
    masks_available: bool | SkipJsonSchema[None] = None
    classes: int | SkipJsonSchema[None] = Field(None, description="how many class names it knows")
    default_threshold: float | SkipJsonSchema[None] = None
    upcoming: str | SkipJsonSchema[None] = Field(
        None, description="a version on its way, e.g. the int8 body `make run` builds in the background")


class ModelList(Answer):
    models: list[ModelListing]


class DeepStackPrediction(Answer):
    label: str
    confidence: float = Field(ge=0, le=1)
    x_min: int = Field(ge=0)
    y_min: int = Field(ge=0)
    x_max: int = Field(ge=0)
    y_max: int = Field(ge=0)


class DeepStackResponse(Answer):
    success: Literal[True]
    predictions: list[DeepStackPrediction]
    count: int = Field(ge=0)
    inferenceMs: int  # noqa: N815 - DeepStack's own field names
    processMs: int  # noqa: N815
    image: ImageSize


class DeepStackError(Answer):
    success: Literal[False]
    error: str
    code: str


class DeepStackModelList(Answer):
    success: Literal[True]
    models: list[str]


class Status(Answer):
    status: str


# The schemas /openapi.json lists, by the name its references use.
SCHEMAS: tuple[type[BaseModel], ...] = (
    PredictResponse, ErrorResponse, Detection, Mask, ModelInfo, ModelDetails, DetectResponse, BatchResponse,
    ModelList, DeepStackResponse, DeepStackError, DeepStackModelList, Status,
)
