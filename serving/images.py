"""Turn untrusted bytes into the RGB tensor every detector takes.

Pillow will happily allocate gigabytes for a tiny compressed file, keep
decoding frames of an animation, or hand back 16-bit or CMYK pixels that a
naive ``convert("RGB")`` clips or mis-rotates; this module is the one place
that guards against all of that.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import ImageTooLarge, UndecodableImage, UnsupportedMediaType
from model.input_image import fitted_size

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_ORIENTATION = 0x0112
# The answers' annotated pictures are drawn on a copy no larger than this.
PREVIEW_MAX_SIDE = 1600
# Peak bytes per pixel while a picture of each mode is decoded and turned into 8-bit RGB:
# the decoded pixels plus the conversion's copies (measured: a 7000x7000 16-bit PNG peaks
# at 8.6-9.4 bytes per pixel). Unknown modes get the largest figure.
_DECODE_BYTES_PER_PIXEL = {
    "RGB": 3, "1": 4, "L": 4, "P": 4, "CMYK": 7, "YCbCr": 6, "LAB": 6, "HSV": 6,
    "LA": 15, "PA": 15, "RGBA": 15, "RGBa": 15, "La": 15,
    "I;16": 10, "I;16B": 10, "I;16L": 10, "I;16N": 10, "I": 17, "F": 13,
}
_UNKNOWN_MODE_BYTES_PER_PIXEL = max(_DECODE_BYTES_PER_PIXEL.values())


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB without clipping wide formats or blackening transparency."""
    # Wide formats are scaled in integers or in place: a float64 copy of a 49 MP picture is 392 MB.
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.array(image)
        if image.mode == "I":
            np.clip(pixels, 0, 65535 if pixels.max() > 255 else 255, out=pixels)
        if image.mode != "I" or pixels.max() > 255:
            pixels >>= 8
        gray = pixels.astype(np.uint8)
        del pixels
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        pixels = np.array(image, dtype=np.float32)
        low = float(pixels.min())
        pixels -= low
        pixels *= 255.0 / max(float(pixels.max()), 1e-12)
        return Image.fromarray(pixels.astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # convert() copies even to its own mode: a full-size copy per request for nothing.
    return image if image.mode == "RGB" else image.convert("RGB")


def _draft_near(image: Image.Image, max_side: int) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when its longest side stays at least ``max_side``.

    The DCT scaling is cheaper than decoding every pixel and shrinking after,
    and a 7000x7000 JPEG then never exists at full size in memory.
    """
    if image.format != "JPEG" or max_side <= 0 or max(image.size) <= max_side:
        return
    width, height = image.size
    scale = max_side / max(width, height)
    image.draft(image.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only; refuse what is not an image or claims too many pixels."""
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
    return image


def _upright_size(image: Image.Image) -> tuple[int, int] | None:
    """The stored size as displayed (EXIF orientations 5-8 turn the picture by 90 degrees), read
    from the header; None where only the decode can tell.

    A PNG may keep its EXIF after its pixels, and Pillow's ``getexif`` then decodes the whole
    picture to look: that would spend the decode before the decode budget is reserved.
    """
    if image.format == "PNG" and "exif" not in image.info:
        return None
    width, height = image.size
    return (height, width) if image.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8) else (width, height)


def stored_size(planned: tuple[int, int] | None, upright: Image.Image) -> tuple[int, int]:
    """The upright size answers' coordinates refer to: as :func:`open_near` planned it, or else
    the decoded upright picture's (a picture whose orientation only its decode told is never
    decoded at reduced scale, so that is its stored size)."""
    return planned if planned is not None else upright.size


def decode_cost(image: Image.Image) -> int:
    """Peak bytes that decoding ``image`` (as opened, after any draft) and converting it to RGB take."""
    per_pixel = _DECODE_BYTES_PER_PIXEL.get(image.mode, _UNKNOWN_MODE_BYTES_PER_PIXEL)
    if image.mode == "P" and "transparency" in image.info:
        per_pixel = _DECODE_BYTES_PER_PIXEL["RGBA"]
    return image.width * image.height * per_pixel


def finish(image: Image.Image) -> Image.Image:
    """Decode the first frame (Image.open stands there; frames are never counted), upright, 8-bit RGB."""
    try:
        image.load()
        if image.getexif().get(_ORIENTATION, 1) != 1:  # exif_transpose copies even when upright
            image = ImageOps.exif_transpose(image) or image
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"image could not be decoded: {exc}") from None


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode the first frame of ``data`` into an upright RGB image at full size, or raise a typed error."""
    return finish(_open(data, max_pixels))


def open_near(data: bytes, max_pixels: int, max_side: int) -> tuple[Image.Image, tuple[int, int] | None]:
    """Read the header and plan the decode: a JPEG may decode smaller (longest side still >= ``max_side``).

    Nothing is decoded yet, so :func:`decode_cost` can be budgeted before
    :func:`finish` spends it. Returns the opened picture and the upright size
    of the image as stored, or None until the decode tells (:func:`stored_size`).
    """
    image = _open(data, max_pixels)
    size = _upright_size(image)
    _draft_near(image, max_side)
    return image, size


def decode_near(data: bytes, max_pixels: int, max_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`open_near` then :func:`finish`, unbudgeted (offline tools and tests)."""
    image, size = open_near(data, max_pixels, max_side)
    upright = finish(image)
    return upright, stored_size(size, upright)


def limit_side(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longest side is at most ``max_side``; detectors resize further anyway."""
    size = fitted_size(image.width, image.height, max_side)
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float tensor [3, H, W] in 0..1, the export's input contract (offline tools).

    One conversion, in numpy: no torch operator, which would start an OpenMP team on the
    calling thread (see model.inference_thread). The tensor is a channels-last view of the
    H x W x 3 array.
    """
    array = np.asarray(image, dtype=np.float32)
    array /= 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def to_pixels(image: Image.Image) -> torch.Tensor:
    """RGB image -> its uint8 pixels [3, H, W] (a channels-last view of one copy), for the model
    thread to shrink and scale (model.input_image). No torch operator runs here."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def photo_tensor(path: Path, max_side: int) -> torch.Tensor:
    """A trusted photo file as a model gets it: decoded, shrunk to ``max_side``, [3, H, W] in 0..1.

    For offline tools (export checks, sweeps, benchmarks) on known photos, hence no pixel limit;
    requests go through :func:`open_near` and the decode budget instead. Shrunk by Pillow here;
    in service the model thread shrinks (model.input_image), within two levels of these pixels.
    """
    return to_tensor(limit_side(decode_image(Path(path).read_bytes(), 10**9), max_side))
