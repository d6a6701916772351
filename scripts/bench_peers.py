#!/usr/bin/env python3
"""This service against its peer, Triton + OpenVINO int8, on the same photos with the same client, in one run.

The peer is Triton Inference Server (the ``tritonserver`` inside PyPI's ``nvidia-pytriton``) serving
the same YOLOv5s export through OpenVINO, quantized to int8 by NNCF (harness/peer_triton.py): the
export's body and decode head converted to OpenVINO with inputs of any multiple of 32, calibrated on
the inputs this service's int8 body is calibrated on, behind the same tensors as this service's
``/v2`` model. It all lives in ``.venv-peer`` (``make peer``), never among the service's dependencies.

One client, Triton's own ``tritonclient.http`` (harness/peer_load.py), sends the evaluation photos
as stored to each server's ``/v2/models/yolov5s/infer``, one server after the other: every photo
once (its labels: the acceptance score), then C threads back to back for ``--seconds`` per
concurrency. Prints, per server, requests/s and p50 / p99 at each concurrency, and the score, with
the CPU model; all load goes to 127.0.0.1.

    python -m scripts.bench_peers --serve artifacts/models --images ../shared/eval/images \\
        --labels ../shared/eval/labels.json          # make bench-peers
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.predictors import score
from harness.peer_process import PEER_PYTHON, Peer, peer_env
from harness.service_process import REPO_ROOT, served


def newest_export(repository: Path, name: str) -> Path:
    """``repository``'s newest version of ``name``, or ``repository`` itself if it is one export."""
    from model.repository import scan_repository

    if (repository / "model.pt").is_file():
        return repository
    versions = scan_repository(repository).get(name)
    if not versions:
        raise SystemExit(f"{repository / name} holds no export: make model")
    return versions[max(versions)]


def peer_model(export: Path, work: Path) -> tuple[Path, Path]:
    """The peer's int8 OpenVINO model and the class names, built once per export (cached in ``work``)."""
    from model.card import ModelCard

    card = ModelCard.read(export)
    folder = work / card.sha256[:16]
    int8_xml, names = folder / "yolov5s-int8.xml", folder / "categories.json"
    if int8_xml.is_file() and names.is_file():
        return int8_xml, names
    folder.mkdir(parents=True, exist_ok=True)
    fp32_xml, calibration = _convert(export, folder)
    names.write_text(json.dumps(card.categories))
    _peer_run(["quantize", "--model", str(fp32_xml), "--calibration", str(calibration), "--out", str(int8_xml)])
    return int8_xml, names


def _convert(export: Path, folder: Path) -> tuple[Path, Path]:
    """The export's body and head in OpenVINO (fp32, any multiple-of-32 input), and the calibration inputs."""
    import openvino as ov
    import torch

    from exporters import sample_photos
    from exporters.builder import DEFAULT_CACHE
    from model.vision_ops import load_vision_ops
    from serving.images import photo_tensor

    load_vision_ops()
    module = torch.jit.load(str(export / "model.pt"), map_location="cpu").eval()

    class Raw(torch.nn.Module):
        """1 x 3 x H x W in 0..1 -> 1 x A x 85: cx, cy, w, h in input pixels, objectness, class probabilities."""

        def __init__(self) -> None:
            super().__init__()
            self.detector = module  # a submodule, as OpenVINO's tracing needs

        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            return self.detector.detect_raw(batch)

    model = ov.convert_model(Raw(), example_input=torch.zeros(1, 3, 640, 640),
                             input=[ov.PartialShape([1, 3, -1, -1])])
    fp32_xml = folder / "yolov5s-fp32.xml"
    ov.save_model(model, str(fp32_xml))
    photos = sample_photos.download(DEFAULT_CACHE, sample_photos.CALIBRATION)
    with torch.inference_mode():
        inputs = {f"input{i}": module.letterbox(photo_tensor(p, 640))[0].numpy() for i, p in enumerate(photos)}
    calibration = folder / "calibration.npz"
    np.savez(calibration, **inputs)
    return fp32_xml, calibration


def _peer_run(arguments: list[str]) -> str:
    result = subprocess.run([str(PEER_PYTHON), "-m", "harness.peer_triton", *arguments], cwd=REPO_ROOT,
                            capture_output=True, text=True, env=peer_env())
    if result.returncode:
        raise SystemExit(f"the peer's {arguments[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def load(address: str, images: Path, concurrency: str, seconds: float) -> dict:
    result = subprocess.run(
        [str(PEER_PYTHON), str(REPO_ROOT / "harness" / "peer_load.py"), "--url", address, "--images", str(images),
         "--concurrency", concurrency, "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=120 + 2 * seconds * len(concurrency.split(",")))
    if result.returncode:
        raise SystemExit(f"the client failed against {address}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=Path, required=True, metavar="REPOSITORY",
                        help="the model repository (or one YOLOv5s export); this service is started on it for the run")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--seconds", type=float, default=20.0, help="per server and concurrency (at most 120)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "artifacts" / "peer",
                        help="where the peer's OpenVINO models are built and kept")
    parser.add_argument("--peer-instances", type=int, default=1, help="Triton model instances")
    parser.add_argument("--peer-hint", default="LATENCY", choices=("LATENCY", "THROUGHPUT"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # A stopped run still stops what it started (both servers run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 0 < args.seconds <= 120:
        parser.error("--seconds must be in (0, 120]")
    if not PEER_PYTHON.is_file():
        parser.error(f"{PEER_PYTHON} is missing: make peer")
    from model.cpu import describe

    int8_xml, names = peer_model(newest_export(args.serve, "yolov5s"), args.work)
    labels = json.loads(args.labels.read_text())
    results = {}
    with served(args.serve, dict(item.split("=", 1) for item in args.env)) as service:
        results["this service"] = load(service.http_url.removeprefix("http://"), args.images, args.concurrency,
                                       args.seconds)
    with Peer(int8_xml, names, args.peer_instances, args.peer_hint) as peer:
        results["Triton + OpenVINO int8"] = load(peer.http, args.images, args.concurrency, args.seconds)
    print(f"{describe()}; {len(results['this service']['labels'])} photos; tritonclient.http, "
          f"{args.seconds:.0f} s per level; peer: {args.peer_instances} instance(s), {args.peer_hint}")
    print(f"{'server':24} {'c':>3} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6} {'score':>6}")
    for server, result in results.items():
        accuracy = sum(score(expected, result["labels"].get(name, [])) for name, expected in labels.items()) / len(labels)
        result["score"] = accuracy
        for level in result["levels"]:
            print(f"{server:24} {level['concurrency']:>3} {level['requests_per_s']:>7.1f} {level['p50_ms']:>7.1f} "
                  f"{level['p99_ms']:>7.1f} {level['failures']:>6} {accuracy:>6.3f}")
    ours, peer_result = results["this service"]["levels"], results["Triton + OpenVINO int8"]["levels"]
    for mine, theirs in zip(ours, peer_result):
        print(f"c={mine['concurrency']}: this service / peer = {mine['requests_per_s'] / theirs['requests_per_s']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
