"""The HTTP API's request fields, defined once: pydantic models that validate requests and describe them.

``http_service.params`` validates every JSON body, query string and form with these models;
``http_service.openapi`` builds ``/openapi.json``'s request schemas and parameters from the same
models, so what the document allows and what the service accepts cannot drift apart. Each
field's ``description`` is also the second half of the error message when it is refused.

JSON bodies are validated strictly (a boolean is not a number, "0.5" is not a number); query
strings and form fields are text, so there the same fields are read in pydantic's lax mode after
``classes`` is split at commas and ``masks`` checked to be true/false/1/0.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from common.errors import InvalidRequest, InvalidURL
from serving import COCO_CLASSES, MAX_DETECTIONS, DetectOptions


def _whole_number(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees), 2.5 is not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# One schema (#/components/schemas/ClassName) that every field naming classes refers to.
ClassName = Enum("ClassName", {name: name for name in COCO_CLASSES}, type=str)  # type: ignore[misc]
DeepStackConfidence = Annotated[float, Field(ge=0, le=1)]


class Options(BaseModel):
    """Detection options: beside a URL in JSON, or as query / form fields beside an upload."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(
        None, min_length=1, description="must be the name of a served model (GET /v1/models); default: the default model",
    )
    threshold: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False, description="must be a number from 0 to 1 (default: the model's)",
    )
    # A JSON string names an enum member: lax for the items alone (a number still is no name).
    classes: list[Annotated[ClassName, Field(strict=False)]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, description='must be a list of at least one COCO class name, e.g. ["person", "dog"]',
    )
    max_detections: Annotated[int, BeforeValidator(_whole_number)] = Field(
        MAX_DETECTIONS, ge=1, le=MAX_DETECTIONS, description=f"must be an integer from 1 to {MAX_DETECTIONS}",
    )
    masks: bool = Field(False, description="must be true or false: COCO RLE masks (Mask R-CNN only)")

    def detect_options(self) -> DetectOptions:
        return DetectOptions(
            model=self.model, threshold=self.threshold,
            classes=tuple(name.value for name in self.classes) if self.classes is not None else None,
            max_detections=self.max_detections, masks=self.masks,
        )


class DetectBody(Options):
    """``POST /v1/detect`` and ``/v1/detect/annotated`` with a JSON body."""

    url: str = Field(min_length=1, description="is required: the image's http(s) URL",
                     json_schema_extra={"example": "https://example.com/street.jpg"})


class PredictBody(BaseModel):
    """``POST /predict``: the design's contract. Other fields are ignored, as they always were."""

    model_config = ConfigDict(extra="allow", strict=True)

    url: str = Field(min_length=1, description="is required: the image's http(s) URL")


class DeepStackFields(BaseModel):
    """The DeepStack / CodeProject.AI form fields beside the ``image`` file."""

    model_config = ConfigDict(extra="ignore")

    min_confidence: DeepStackConfidence = Field(0.4, description="must be a number from 0 to 1 (default 0.4)")
    api_key: str | None = Field(None, description="must match DETECTOR_DEEPSTACK_API_KEY where it is set")


def batch_body(max_batch: int) -> type[Options]:
    """``POST /v1/detect:batch``: ``urls`` plus the options; its size limit is a setting."""
    return create_model(
        "BatchBody",
        __base__=Options,
        __doc__="``POST /v1/detect:batch``.",
        urls=(list[Annotated[str, Field(min_length=1)]],
              Field(min_length=1, max_length=max_batch, description=f"must hold 1 to {max_batch} URLs")),
    )


TEXT_TRUE = {"true", "1"}
TEXT_FALSE = {"false", "0"}


def validated(model: type[BaseModel], data: Any, parameters: bool = False) -> Any:
    """``data`` as ``model``, or InvalidRequest naming the field and what it must be.

    ``parameters``: the data came as a query string or form fields, all text: read in lax mode,
    and the message says "parameter". A JSON body is read as the model says (strict).
    """
    try:
        return model.model_validate(data, strict=False if parameters else None)
    except ValidationError as error:
        raise _refusal(model, error, parameters) from None


def text_fields(fields: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Query-string or form values as the fields' data: ``classes`` repeated or comma-separated."""
    data: dict[str, Any] = {}
    for name in fields:
        if name != "classes" and len(fields.getlist(name)) > 1:
            raise InvalidRequest(f'"{name}" is given more than once (query and form fields count alike)', field=name)
        if name == "classes":
            data[name] = [part.strip() for value in fields.getlist(name) for part in value.split(",") if part.strip()]
        elif name == "masks":
            flag = fields[name].strip().lower()
            if flag not in TEXT_TRUE | TEXT_FALSE:
                raise InvalidRequest(f'"masks" {Options.model_fields["masks"].description}', field="masks")
            data[name] = flag in TEXT_TRUE
        else:
            data[name] = fields[name].strip() if name in names else fields[name]
    return data


def _refusal(model: type[BaseModel], error: ValidationError, parameters: bool) -> InvalidRequest:
    problems = error.errors(include_url=False)
    extra = sorted({str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden"})
    if extra:
        kind = "parameter(s)" if parameters else "field(s)"
        accepted = ", ".join(name for name in model.model_fields)
        return InvalidRequest(f"unknown {kind} {', '.join(extra)}; accepted: {accepted}")
    if not problems[0]["loc"]:
        return InvalidRequest("body must be a JSON object")
    name = str(problems[0]["loc"][0])
    unknown = [p["input"] for p in problems if p["type"] == "enum" and p["loc"][0] == "classes"]
    if unknown:
        return InvalidRequest(
            f'unknown class name(s) in "classes": {", ".join(map(repr, unknown))}; '
            f"valid names are the {len(COCO_CLASSES)} COCO categories (see \"choices\")",
            choices=list(COCO_CLASSES), field="classes",
        )
    description = model.model_fields[name].description if name in model.model_fields else None
    if problems[0]["type"] == "string_too_short" and name in ("url", "urls"):
        # The same refusal as an empty URL over gRPC, which the fetch makes.
        where = f'"{name}"' if len(problems[0]["loc"]) == 1 else f'"{name}"[{problems[0]["loc"][1]}]'
        return InvalidURL(f"{where} is empty: give the image's http(s) URL")
    if problems[0]["type"] == "missing":
        return InvalidRequest(f'field "{name}" is required', field=name)
    return InvalidRequest(f'"{name}" {description or "is not valid"}', field=name)
