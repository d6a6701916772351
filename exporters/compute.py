"""The numerics switch every exported detector carries, set by the serving process at load time.

Each export keeps its weights in float32. Where the CPU has bf16 matrix units,
``model.precision`` either converts the part its sidecar names
(``precision_module``) to bfloat16 and channels-last, or makes the weights
channels-last and runs the module under autocast (``bf16_mode``), and sets
the wrapper's ``compute_dtype`` / ``channels_last`` attributes to match. The
wrapper casts its input with :func:`to_compute` and takes the features back
to float32 for the decode, whose coordinates need float32's precision.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def add_numerics_switch(wrapper: nn.Module) -> None:
    """Give a wrapper the attributes model.precision sets at load time; float32, contiguous until then."""
    wrapper.compute_dtype = torch.float32
    wrapper.channels_last = False


def to_compute(images: Tensor, dtype: torch.dtype, channels_last: bool) -> Tensor:
    """N x C x H x W in the dtype and memory format the convolutional body runs in."""
    images = images.to(dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
