"""Which numerics the served model runs in: float32, or bfloat16 with channels-last on CPUs built for it.

On a CPU with AVX512-BF16 or AMX-BF16, oneDNN runs bf16 convolutions on the
matrix units: YOLOv5s's body takes about a quarter of its float32 time. The
export decides whether a model may run in bf16 (its sidecar's ``precision``,
kept only where bf16 gave the same answers as fp32); this module decides at
load time whether it will, from that, the operator's ``DETECTOR_PRECISION``
and the CPU's flags, puts the module in those numerics and says why in one
line for the log. Two ways to run bf16, chosen per model at export
(``bf16_mode``): ``convert`` turns the convolutional body's weights to bf16 and
channels-last (fastest where the body is nearly all of the work: YOLOv5s
21 ms against 30 ms with autocast); ``autocast`` keeps the weights, makes them
channels-last and runs the whole forward pass under CPU autocast (Mask R-CNN,
whose heads are a large part of the work: 0.81 s against 2.0 s converting the
backbone alone).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import torch

from model.card import ModelCard
from model.config import PRECISIONS

FP32 = "fp32"
BF16 = "bf16"
# Without one of these, oneDNN emulates bf16 and it is slower than fp32.
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CONVERT = "convert"
AUTOCAST = "autocast"


@dataclass(frozen=True)
class Choice:
    precision: str
    reason: str


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist, i.e. not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def fast_bf16(flags: frozenset[str]) -> str | None:
    """The flag that makes bf16 fast here, or None."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return None
    return next((flag for flag in FAST_BF16_FLAGS if flag in flags), None)


def choose(card: ModelCard, requested: str, flags: frozenset[str]) -> Choice:
    """``requested`` is DETECTOR_PRECISION: ``auto`` follows the sidecar, ``fp32``/``bf16`` override it."""
    if requested not in PRECISIONS:
        raise ValueError(f"DETECTOR_PRECISION must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == FP32:
        return Choice(FP32, "DETECTOR_PRECISION=fp32")
    if requested == "auto" and card.precision != BF16:
        return Choice(FP32, f"the export chose fp32 ({card.precision_check.get('outcome', 'no bf16 check')})")
    if not has_bf16_path(card.bf16_mode, card.precision_module):
        return Choice(FP32, f"{card.name} has no bf16 path")
    flag = fast_bf16(flags)
    if flag is None:
        return Choice(FP32, f"this CPU has none of {', '.join(FAST_BF16_FLAGS)}: bf16 would be emulated, slower")
    origin = "DETECTOR_PRECISION=bf16" if requested == BF16 else "the export verified bf16"
    return Choice(BF16, f"{origin}; the CPU has {flag}")


def has_bf16_path(mode: str, precision_module: str) -> bool:
    return mode == AUTOCAST or (mode == CONVERT and bool(precision_module))


def apply(
    module: torch.jit.ScriptModule, precision: str, mode: str, precision_module: str
) -> Callable[[], ContextManager]:
    """Put ``module`` in ``precision`` in place; returns the context every forward pass must run in.

    ``convert``: the part at the dotted path ``precision_module`` becomes bf16 and channels-last, and
    the wrapper casts its input to match. ``autocast``: all 4-D weights become channels-last, and
    the returned context is CPU autocast to bf16.
    """
    if precision == FP32:
        return contextlib.nullcontext
    if mode == AUTOCAST:
        module.to(memory_format=torch.channels_last)
        module.channels_last = True
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    part = module
    for name in precision_module.split("."):
        part = getattr(part, name)
    part.to(torch.bfloat16)
    part.to(memory_format=torch.channels_last)
    module.compute_dtype = torch.bfloat16
    module.channels_last = True
    return contextlib.nullcontext
