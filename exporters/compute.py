"""The numerics switch every exported detector carries, set by the serving process at load time.

Each export keeps its weights in float32 and names its heavy convolutional
part in the sidecar (``precision_module``). Where the CPU has bf16 matrix
units, ``model.precision`` converts that part to bfloat16 and channels-last
and sets the wrapper's ``compute_dtype`` / ``channels_last`` attributes; the
wrapper then casts its input with :func:`to_compute` and takes the features
back to float32 for the decode, whose coordinates need float32's precision.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_compute(images: Tensor, dtype: torch.dtype, channels_last: bool) -> Tensor:
    """N x C x H x W in the dtype and memory format the convolutional body runs in."""
    images = images.to(dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
