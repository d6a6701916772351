"""The peer: Triton Inference Server serving YOLOv5s through OpenVINO, int8 by NNCF, as a capable team would.

Runs in the peer's environment (``.venv-peer``, ``make peer``: PyPI's ``nvidia-pytriton``, whose
``tritonserver`` is Triton Inference Server itself, with ``openvino`` and ``nncf``), never in the
service's. Its Python stub links the system libpython: start it with ``LD_LIBRARY_PATH`` set to the
venv Python's library folder (scripts/bench_peers.py does). Run as ``python -m harness.peer_triton``
from the repository's root; of the project it imports only :mod:`harness.ports` (the standard library).

``quantize``: the fp32 OpenVINO model (``scripts/bench_peers.py`` converts the export's body and
decode head, inputs of any multiple of 32) is quantized to int8 with NNCF's post-training
quantization on the calibration inputs the service's own int8 body is calibrated on, letterboxed
the same way.

``serve``: Triton on free 127.0.0.1 ports with the model under the service's name and tensors
(``IMAGE`` BYTES in; the five EfficientNMS outputs), so one client runs unchanged against both.
Each image is decoded by Pillow, shrunk to 640 on its long side (never enlarged), padded with
YOLOv5's grey to the next multiple of 32, run by OpenVINO (2 threads, latency hint), and decoded
with class-wise NMS at IoU 0.45 over candidates scoring at least 0.05, the service's own rules.
``--instances`` model instances (Triton's way to use more cores) share one compiled model, each
with its own infer request. Prints one JSON line with the addresses once ready, and serves until stopped.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from harness.ports import free_ports

MAX_SIDE = 640
STRIDE = 32
PAD_VALUE = 114
CANDIDATE_FLOOR = 0.05
NMS_IOU = 0.45
MAX_DETECTIONS = 100


def letterbox(image: "Image.Image") -> tuple[np.ndarray, float, int, int]:  # noqa: F821
    """RGB picture -> (1 x 3 x H x W float32 in 0..1, scale, left pad, top pad), sides multiples of 32."""
    from PIL import Image

    scale = min(1.0, MAX_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    width, height = image.size
    target_w, target_h = -(-width // STRIDE) * STRIDE, -(-height // STRIDE) * STRIDE
    left, top = (target_w - width) // 2, (target_h - height) // 2
    canvas = np.full((target_h, target_w, 3), PAD_VALUE, np.uint8)
    canvas[top: top + height, left: left + width] = np.asarray(image)
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, scale, left, top


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best first."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        order = rest[overlap / (areas[best] + areas[rest] - overlap + 1e-9) <= iou]
    return kept


def decode(raw: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's A x 85 rows (cx, cy, w, h, objectness, class probabilities) -> boxes, classes, scores."""
    raw = raw[raw[:, 4] >= CANDIDATE_FLOOR]
    probabilities = raw[:, 5:] * raw[:, 4:5]
    classes = probabilities.argmax(1)
    scores = probabilities[np.arange(len(raw)), classes]
    keep = scores >= max(threshold, CANDIDATE_FLOOR)
    raw, classes, scores = raw[keep], classes[keep], scores[keep]
    boxes = np.concatenate([raw[:, :2] - raw[:, 2:4] / 2, raw[:, :2] + raw[:, 2:4] / 2], axis=1)
    # Class-wise: boxes of different classes never overlap once shifted apart by class.
    shifted = boxes + classes[:, None] * (4 * MAX_SIDE)
    kept = nms(shifted, scores, NMS_IOU)[:MAX_DETECTIONS]
    return boxes[kept], classes[kept], scores[kept]


def compile_model(model_xml: Path, threads: int, hint: str) -> object:
    import openvino as ov

    return ov.Core().compile_model(str(model_xml), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint})


class Detector:
    """One Triton model instance: its own OpenVINO infer request, and the service's rules around it."""

    def __init__(self, compiled: object, categories: list[str], threshold: float):
        self.request = compiled.create_infer_request()  # type: ignore[attr-defined]
        self.categories = categories
        self.threshold = threshold

    def detect(self, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
        batch, scale, left, top = letterbox(image)
        raw = self.request.infer([batch])[0][0]
        boxes, classes, scores = decode(raw, self.threshold)
        boxes = (boxes - np.array([left, top, left, top], np.float32)) / scale
        boxes = np.clip(boxes, 0, [image.width, image.height, image.width, image.height])
        return boxes.astype(np.float32), classes.astype(np.int32), scores.astype(np.float32)

    def infer(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Triton's batched callable: each request's images, answered EfficientNMS-style, padded to K."""
        answers = []
        for request in requests:
            found = [self.detect(bytes(element)) for element in request["IMAGE"].reshape(-1)]
            width = max([1] + [len(scores) for _, _, scores in found])
            count = np.zeros((len(found), 1), np.int32)
            boxes = np.zeros((len(found), width, 4), np.float32)
            scores = np.zeros((len(found), width), np.float32)
            classes = np.full((len(found), width), -1, np.int32)
            labels = np.full((len(found), width), b"", np.object_)
            for row, (b, c, s) in enumerate(found):
                count[row, 0] = len(s)
                boxes[row, : len(s)], scores[row, : len(s)], classes[row, : len(s)] = b, s, c
                labels[row, : len(s)] = [self.categories[i].encode() for i in c]
            answers.append({"num_detections": count, "detection_boxes": boxes, "detection_scores": scores,
                            "detection_classes": classes, "detection_labels": labels})
        return answers


def quantize(model_xml: Path, calibration: Path, out_xml: Path) -> None:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(model_xml))
    with np.load(calibration) as arrays:
        inputs = [arrays[name] for name in sorted(arrays.files)]
    quantized = nncf.quantize(model, nncf.Dataset(inputs), subset_size=len(inputs))
    ov.save_model(quantized, str(out_xml))


def serve(model_xml: Path, name: str, categories: list[str], threshold: float, threads: int, instances: int,
          hint: str) -> None:
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    compiled = compile_model(model_xml, threads, hint)
    detectors = [Detector(compiled, categories, threshold) for _ in range(instances)]
    http, grpc_, metrics = free_ports(3)
    config = TritonConfig(http_address="127.0.0.1", http_port=http, grpc_address="127.0.0.1", grpc_port=grpc_,
                          metrics_address="127.0.0.1", metrics_port=metrics, log_verbose=0)
    outputs = {"num_detections": (np.int32, (-1, 1)), "detection_boxes": (np.float32, (-1, -1, 4)),
               "detection_scores": (np.float32, (-1, -1)), "detection_classes": (np.int32, (-1, -1)),
               "detection_labels": (np.bytes_, (-1, -1))}
    with Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=[])) as triton:
        triton.bind(
            model_name=name, infer_func=[detector.infer for detector in detectors],
            inputs=[Tensor(name="IMAGE", dtype=np.bytes_, shape=(-1,))],
            outputs=[Tensor(name=key, dtype=dtype, shape=shape) for key, (dtype, shape) in outputs.items()],
            config=ModelConfig(batching=False),
        )
        triton.run()
        print(json.dumps({"http": f"127.0.0.1:{http}", "grpc": f"127.0.0.1:{grpc_}"}), flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quantize")
    q.add_argument("--model", type=Path, required=True, help="the fp32 OpenVINO model (.xml)")
    q.add_argument("--calibration", type=Path, required=True, help=".npz of letterboxed 1 x 3 x H x W inputs")
    q.add_argument("--out", type=Path, required=True)
    s = commands.add_parser("serve")
    s.add_argument("--model", type=Path, required=True, help="the OpenVINO model to serve (.xml)")
    s.add_argument("--name", default="yolov5s")
    s.add_argument("--categories", type=Path, required=True, help="JSON list of the class names")
    s.add_argument("--threshold", type=float, default=0.3)
    s.add_argument("--threads", type=int, default=2, help="OpenVINO's threads")
    s.add_argument("--instances", type=int, default=1, help="Triton model instances, each its own infer request")
    s.add_argument("--hint", default="LATENCY", choices=("LATENCY", "THROUGHPUT"), help="OpenVINO's performance hint")
    args = parser.parse_args()
    if args.command == "quantize":
        quantize(args.model, args.calibration, args.out)
    else:
        serve(args.model, args.name, json.loads(args.categories.read_text()), args.threshold, args.threads,
              args.instances, args.hint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
