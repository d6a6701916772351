"""Binary masks as COCO run-length encoding, the format COCO tools read.

``{"size": [height, width], "counts": "<string>"}`` is what
``pycocotools.mask.decode`` takes directly: run lengths over the mask in
column-major order, starting with a run of zeros, compressed to text the
way pycocotools' ``rleToString`` does (tests check the two agree).
"""

from __future__ import annotations

import numpy as np


def run_lengths(mask: np.ndarray) -> list[int]:
    """Alternating zero/one run lengths in column-major order, starting with zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(edges).tolist()
    return [0, *counts] if flat[0] else counts


def compress(counts: list[int]) -> str:
    """pycocotools' text form: each count (after the third, as a delta) in 5-bit groups, '0'-based."""
    out = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            out.append(chr(chunk + 48))
    return "".join(out)


def encode(mask: np.ndarray) -> dict[str, object]:
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": compress(run_lengths(mask))}
