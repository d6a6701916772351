"""Turn untrusted bytes into the RGB tensor every detector takes.

Pillow will happily allocate gigabytes for a tiny compressed file, keep
decoding frames of an animation, or hand back 16-bit or CMYK pixels that a
naive ``convert("RGB")`` clips or mis-rotates; this module is the one place
that guards against all of that.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import ImageTooLarge, UndecodableImage, UnsupportedMediaType

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB without clipping wide formats or blackening transparency."""
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or pixels.max() > 255 else 255.0
        gray = np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        span = max(float(pixels.max() - pixels.min()), 1e-12)
        gray = ((pixels - pixels.min()) / span * 255.0).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode the first frame of ``data`` into an upright RGB image, or raise a typed error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise UnsupportedMediaType("the URL did not return a recognised image format") from None
        raise ImageTooLarge(f"image has too many pixels (limit {max_pixels})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImage(f"image could not be decoded: {exc.__class__.__name__}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UndecodableImage("image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height}; the limit is {max_pixels} pixels")
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"image could not be decoded: {exc}") from None


def limit_side(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longest side is at most ``max_side``; detectors resize further anyway."""
    longest = max(image.size)
    if max_side <= 0 or longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float tensor [3, H, W] in 0..1, the export's input contract."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
