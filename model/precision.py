"""Which numerics the served model runs in: int8, bf16 or fp32, chosen per CPU.

* **int8** (YOLOv5s): the export quantized the convolutional body and compiled
  it ahead of time (model.compiled_body), keeping it only where its answers
  matched fp32's. oneDNN runs int8 convolutions fast on AVX512-VNNI, AVX-VNNI or
  AMX-INT8; without one of them it would be slower than bf16. The packages
  are native code, so the CPU must also have every flag they were compiled
  for (``requires_flags``).
* **bf16**: on a CPU with AVX512-BF16 or AMX-BF16, oneDNN runs bf16
  convolutions on the matrix units: YOLOv5s's body takes about half its
  float32 time. Two ways, chosen per model at export (``bf16_mode``):
  ``convert`` turns the convolutional body's weights to bf16 and channels-last
  (fastest where the body is nearly all of the work: YOLOv5s 21 ms against
  30 ms with autocast); ``autocast`` keeps the weights, makes them
  channels-last and runs the whole forward pass under CPU autocast (Mask
  R-CNN, whose heads are a large part of the work: 0.81 s against 2.0 s
  converting the backbone alone).
* **fp32** everywhere else, and on any CPU when asked.

The export decides what a model may run in (its sidecar's ``precision`` and
``int8``); this module decides at load time what it will, from that, the
operator's ``DETECTOR_PRECISION`` and the CPU's flags, and says why in one line
for the log.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Callable, ContextManager

import torch

from model.card import ModelCard
from common.settings import PRECISIONS
from model.cpu import FAST_BF16_FLAGS, FAST_INT8_FLAGS

FP32 = "fp32"
BF16 = "bf16"
INT8 = "int8"
CONVERT = "convert"
AUTOCAST = "autocast"


@dataclass(frozen=True)
class Choice:
    precision: str
    reason: str


def fast_bf16(flags: frozenset[str]) -> str | None:
    """The flag that makes bf16 fast here, or None."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return None
    return next((flag for flag in FAST_BF16_FLAGS if flag in flags), None)


def fast_int8(flags: frozenset[str]) -> str | None:
    """The flag that makes int8 fast here, or None."""
    return next((flag for flag in FAST_INT8_FLAGS if flag in flags), None)


def choose(card: ModelCard, requested: str, flags: frozenset[str]) -> Choice:
    """``requested`` is DETECTOR_PRECISION: ``auto`` takes the fastest the export verified; the others force one."""
    if requested not in PRECISIONS:
        raise ValueError(f"DETECTOR_PRECISION must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == FP32:
        return Choice(FP32, "DETECTOR_PRECISION=fp32")
    if requested in ("auto", INT8):
        int8, why_not = _int8_choice(card, flags)
        if int8 is not None:
            return int8 if requested == "auto" else Choice(INT8, f"DETECTOR_PRECISION=int8; {int8.reason}")
        if requested == INT8:
            return replace(_float_choice(card, "auto", flags), reason=f"int8 asked for, but {why_not}")
        float_choice = _float_choice(card, requested, flags)
        return replace(float_choice, reason=f"{float_choice.reason}; not int8: {why_not}")
    return _float_choice(card, requested, flags)


def _int8_choice(card: ModelCard, flags: frozenset[str]) -> tuple[Choice | None, str]:
    """int8 and why, or None and why not."""
    if not card.int8.get("packages"):
        return None, f"the export has no int8 body ({card.int8.get('outcome', 'not built')})"
    flag = fast_int8(flags)
    if flag is None:
        return None, f"this CPU has none of {', '.join(FAST_INT8_FLAGS)}"
    lacking = sorted(set(card.int8.get("requires_flags", [])) - flags)  # type: ignore[arg-type]
    if lacking:
        return None, f"the int8 body was compiled for CPU features this CPU lacks ({', '.join(lacking)})"
    return Choice(INT8, f"the export verified int8; the CPU has {flag}"), ""


def _float_choice(card: ModelCard, requested: str, flags: frozenset[str]) -> Choice:
    """bf16 or fp32; ``requested`` is ``auto`` or ``bf16``."""
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
    the returned context is CPU autocast to bf16. ``int8``: the compiled body (model.compiled_body)
    replaces that part, whose fp32 weights are dropped (29 MB for YOLOv5s, in every serving
    process); the module's own forward cannot run after that, only ``letterbox`` and ``finish``.
    """
    if precision == FP32:
        return contextlib.nullcontext
    if precision == INT8:
        replaced = _part(module, precision_module)
        for tensor in [*replaced.parameters(), *replaced.buffers()]:
            tensor.data = torch.empty(0, dtype=tensor.dtype)
        return contextlib.nullcontext
    if mode == AUTOCAST:
        module.to(memory_format=torch.channels_last)
        module.channels_last = True
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    part = _part(module, precision_module)
    part.to(torch.bfloat16)
    part.to(memory_format=torch.channels_last)
    module.compute_dtype = torch.bfloat16
    module.channels_last = True
    return contextlib.nullcontext


def _part(module: torch.jit.ScriptModule, dotted: str) -> torch.jit.ScriptModule:
    """The submodule at the dotted path ``dotted`` (the sidecar's ``precision_module``)."""
    for name in dotted.split("."):
        module = getattr(module, name)
    return module
