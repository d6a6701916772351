"""The protocol's tensors on the wire: datatypes, BYTES framing, and what a request or answer holds.

Transport-neutral: the REST adapter (JSON and Triton's binary tensor data extension) and the gRPC
adapter (typed contents and ``raw_input_contents``) both turn their wire format into these
dataclasses, and turn :class:`OutputTensor` back into theirs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from common.errors import InvalidRequest

# The protocol's datatypes this service reads or writes, and their numpy types (BYTES: Python objects).
NUMPY_TYPES = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
               "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
               "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}
_LENGTH = struct.Struct("<I")


def element_count(shape: list[int]) -> int:
    count = 1
    for dimension in shape:
        count *= dimension
    return count


def decode_bytes(raw: bytes, count: int, tensor: str) -> list[bytes]:
    """A BYTES tensor's raw contents: each element a 4-byte little-endian length, then its bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise InvalidRequest(f'input "{tensor}": its raw BYTES contents end inside an element\'s length')
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidRequest(f'input "{tensor}": an element says {length} bytes, more than the contents hold')
        elements.append(raw[offset:offset + length])
        offset += length
    if len(elements) != count:
        raise InvalidRequest(f'input "{tensor}": its shape says {count} element(s), its contents hold {len(elements)}')
    return elements


def encode_bytes(elements: list[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(element)) + element for element in elements)


@dataclass(frozen=True)
class InputTensor:
    """One input as a request carries it; ``elements`` are its BYTES elements, in order."""

    name: str
    datatype: str
    shape: list[int]
    elements: list[bytes]


@dataclass(frozen=True)
class InferRequest:
    """A ModelInfer or POST .../infer request, whichever wire it came on."""

    model: str
    version: str
    inputs: list[InputTensor]
    parameters: dict[str, object] = field(default_factory=dict)
    # The outputs asked for (None: all); the REST adapter also records which it sends as binary.
    outputs: list[str] | None = None
    id: str = ""


@dataclass(frozen=True)
class OutputTensor:
    """One output: ``data`` is a numpy array of the datatype (BYTES: an object array of ``bytes``)."""

    name: str
    datatype: str
    data: np.ndarray

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)

    def raw(self) -> bytes:
        """Flattened, row-major, little-endian; BYTES elements length-prefixed."""
        if self.datatype == "BYTES":
            return encode_bytes([bytes(element) for element in self.data.reshape(-1)])
        return np.ascontiguousarray(self.data, dtype=np.dtype(NUMPY_TYPES[self.datatype]).newbyteorder("<")).tobytes()

    def listed(self) -> list[object]:
        """Flattened into JSON values (BYTES: UTF-8 strings, which every output of this service is)."""
        flat = self.data.reshape(-1)
        if self.datatype == "BYTES":
            return [bytes(element).decode("utf-8") for element in flat]
        return flat.tolist()
