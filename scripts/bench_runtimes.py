#!/usr/bin/env python3
"""The served body against OpenVINO on this CPU: the same input, the same threads, p50 of N runs.

Times the convolutional body (the forward pass proper, without letterbox or
NMS) of an export, in every way this CPU can run it:

* ``torchscript fp32``, ``torchscript bf16``: the exported module's body as a
  serving process runs it (model.precision.apply), bf16 only where the CPU has
  fast bf16;
* ``int8 compiled``: the export's AOTInductor int8 packages (model.compiled_body),
  where the export built them and the CPU can run them;
* ``openvino f32``, ``openvino bf16``: the same fp32 body converted by
  OpenVINO (``ov.convert_model``), with its own inference precision hint; a
  dev-only dependency, there for this comparison.

Two inputs: one 640x640 tensor, and the evaluation photos at the letterboxed
sizes the service gives the body (mean over photos of each photo's p50). The
row the service serves here (``DETECTOR_PRECISION=auto``) is marked, and its
ratio to OpenVINO's fastest is printed with the CPU's model and kind.

    python -m scripts.bench_runtimes --model artifacts/models/yolov5s/1 --images ../shared/eval/images
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision  # noqa: F401  (registers the nms op the export calls)

from exporters.compute import to_compute
from model import precision as numerics
from model.card import MODEL_FILE, ModelCard
from model.compiled_body import CompiledBody
from common.settings import Settings
from model.cpu import cpu_flags, cpu_kind, cpu_model
from serving.images import photo_tensor
from model.memory import keep_activations_on_heap

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
Run = Callable[[torch.Tensor], object]


def p50_ms(run: Run, batch: torch.Tensor, runs: int) -> float:
    """Median wall time of ``runs`` calls after three warm-up calls (oneDNN builds kernels on the first)."""
    for _ in range(3):
        run(batch)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def torchscript_body(model_dir: Path, precision: str, card: ModelCard) -> Run:
    module = torch.jit.load(str(model_dir / MODEL_FILE), map_location="cpu").eval()
    numerics.apply(module, precision, card.bf16_mode, card.precision_module)
    body = getattr(module, card.precision_module)
    bf16 = precision == numerics.BF16  # what numerics.apply set the module's own switch to

    def run(batch: torch.Tensor) -> object:
        return body(to_compute(batch, torch.bfloat16 if bf16 else torch.float32, bf16))

    return run


def openvino_body(model_dir: Path, card: ModelCard, hint: str, threads: int) -> Callable[[torch.Tensor], object]:
    """The fp32 TorchScript body converted by OpenVINO, compiled per input shape (static shapes, its fastest)."""
    import openvino as ov

    module = torch.jit.load(str(model_dir / MODEL_FILE), map_location="cpu").eval()
    body = getattr(module, card.precision_module)
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
    compiled: dict[tuple[int, ...], object] = {}

    def run(batch: torch.Tensor) -> object:
        shape = tuple(batch.shape)
        if shape not in compiled:
            model = ov.convert_model(body, example_input=batch, input=[list(shape)])
            compiled[shape] = core.compile_model(model, "CPU", config)
        return compiled[shape]([batch.numpy()])  # type: ignore[operator]

    return run


def runtimes(model_dir: Path, card: ModelCard, flags: frozenset[str], threads: int) -> dict[str, Run]:
    """Every way this CPU can run the body, by name."""
    found: dict[str, Run] = {"torchscript fp32": torchscript_body(model_dir, numerics.FP32, card)}
    if numerics.fast_bf16(flags) and numerics.has_bf16_path(card.bf16_mode, card.precision_module):
        found["torchscript bf16"] = torchscript_body(model_dir, numerics.BF16, card)
    if card.int8.get("packages") and numerics.choose(card, "int8", flags).precision == numerics.INT8:
        found["int8 compiled"] = CompiledBody.load(model_dir, card.int8)
    try:
        import openvino  # noqa: F401
    except ImportError:
        print("openvino is not installed (pip install -r requirements-dev.txt): no OpenVINO rows")
        return found
    found["openvino f32"] = openvino_body(model_dir, card, "f32", threads)
    if numerics.fast_bf16(flags):
        found["openvino bf16"] = openvino_body(model_dir, card, "bf16", threads)
    return found


def served_name(choice: str) -> str:
    return {numerics.INT8: "int8 compiled", numerics.BF16: "torchscript bf16"}.get(choice, "torchscript fp32")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/yolov5s/1"), help="an export (python -m exporters)")
    parser.add_argument("--images", type=Path, help="photos to time at their letterboxed sizes")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per runtime and input")
    parser.add_argument("--threads", type=int, default=Settings.from_env().torch_threads,
                        help="torch and OpenVINO threads (default: what a serving process uses)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_activations_on_heap()  # as a serving process does (serving.pipeline)
    card = ModelCard.read(args.model)
    if not card.precision_module:
        parser.error(f"{card.name} has no separable body (precision_module) to time")
    flags = cpu_flags()
    choice = numerics.choose(card, "auto", flags)
    module = torch.jit.load(str(args.model / MODEL_FILE), map_location="cpu").eval()
    inputs = {"640x640": [torch.rand(1, 3, 640, 640)]}
    if args.images:
        photos = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        inputs["photos"] = [
            module.letterbox(photo_tensor(p, card.max_side))[0]
            for p in photos
        ]
    print(f"CPU: {cpu_model()} ({cpu_kind(flags)}), {args.threads} threads; model {card.name}; "
          f"served here: {choice.precision} ({choice.reason})")
    results: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for name, run in runtimes(args.model, card, flags, args.threads).items():
            results[name] = {label: statistics.mean(p50_ms(run, b, args.runs) for b in batches)
                             for label, batches in inputs.items()}
            cells = "  ".join(f"{label} {ms:7.1f} ms" for label, ms in results[name].items())
            marker = "  <- served" if name == served_name(choice.precision) else ""
            print(f"{name:18} {cells}{marker}", flush=True)
    served = results[served_name(choice.precision)]
    openvino = {name: r for name, r in results.items() if name.startswith("openvino")}
    if openvino:
        for label in inputs:
            best_name = min(openvino, key=lambda n: openvino[n][label])
            print(f"{label}: served / {best_name} = {served[label] / openvino[best_name][label]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu_model(), "kind": cpu_kind(flags), "threads": args.threads,
                                         "served": choice.precision, "p50_ms": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
