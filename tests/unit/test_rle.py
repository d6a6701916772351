"""Our COCO RLE must be exactly what pycocotools writes and reads."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from serving.rle import encode, run_lengths


def _reference(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


@settings(max_examples=300, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_encoding_matches_pycocotools_and_decodes_back(mask):
    encoded = encode(mask)
    assert encoded == _reference(mask)
    decoded = coco_mask.decode({"size": encoded["size"], "counts": encoded["counts"].encode("ascii")})
    assert np.array_equal(decoded.astype(bool), mask)


def test_long_runs_and_a_mask_starting_with_ones():
    mask = np.zeros((480, 640), dtype=bool)
    mask[100:300, 50:600] = True
    assert encode(mask) == _reference(mask)
    full = np.ones((7, 5), dtype=bool)
    assert run_lengths(full) == [0, 35]
    assert encode(full) == _reference(full)
