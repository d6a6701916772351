"""Decoded pixels to the image a detector takes: shrunk to the model's side and scaled to 0..1.

Request threads hand the model thread an image's 8-bit pixels as decoded, and the shrink runs
there, in torch: antialiased bilinear on uint8 channels-last takes 1.0 ms for a 768x576 photo
to 640x480 on the model thread's two OpenMP threads, where Pillow's bilinear took 3.6 to 4.7 ms
on a request thread (AMD EPYC, Zen 4), and its pixels stay within two levels of Pillow's.
Shrinking first and scaling after also converts a quarter fewer pixels to float for a photo
that size. Runs on the model thread only: a torch operator on a request thread would give that
thread an OpenMP team of its own (model.inference_thread).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) shrunk so the longest side is at most ``max_side`` (0 or less: no limit)."""
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_input(pixels: torch.Tensor, max_side: int) -> torch.Tensor:
    """uint8 pixels [3, H, W] (any strides) -> float32 [3, h, w] in 0..1, sized by :func:`fitted_size`."""
    width, height = fitted_size(int(pixels.shape[-1]), int(pixels.shape[-2]), max_side)
    if (height, width) != tuple(pixels.shape[-2:]):
        batch = pixels.unsqueeze(0).contiguous(memory_format=torch.channels_last)
        pixels = F.interpolate(batch, size=[height, width], mode="bilinear", align_corners=False, antialias=True)[0]
    return pixels.float().div_(255.0)
