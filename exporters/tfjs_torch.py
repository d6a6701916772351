"""Run a TensorFlow.js graph model's GraphDef as a PyTorch module, op by op, in NCHW.

Both offline detectors (the CenterNet and YOLOv5s) ship as TF.js graphs. Their
convolutional bodies are rebuilt here from the graph itself, so a port follows
the published graph exactly, including the places where TensorFlow and
PyTorch differ: SAME padding puts the odd pixel after, the legacy bilinear
resize samples without a half-pixel shift, SAME max pooling pads with -inf.
Each architecture's own file keeps only what is particular to it (which nodes
are its outputs, its decode). The module is meant to be traced to TorchScript
at export time; nothing here is imported by a serving process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from exporters.tfjs_graph import GraphModel, Node

_CONV_OPS = {"_FusedConv2D", "Conv2D"}
_DEPTHWISE_OPS = {"FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}
SUPPORTED_OPS = frozenset(
    {
        "_FusedConv2D", "Conv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative",
        "Mul", "Add", "AddV2", "Relu", "Relu6", "Sigmoid", "Identity", "Mean", "ConcatV2",
        "ResizeBilinear", "ResizeNearestNeighbor", "Pad", "MaxPool",
    }
)


def input_name(raw: str) -> str:
    """``"node:1"`` -> ``"node"``: the graph names tensors by node and output index."""
    return raw.split(":")[0]


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME puts the odd pixel of padding after, unlike PyTorch's symmetric pad.

    Integer arithmetic only: ``torch.export`` follows a symbolic ``size`` through it (exporters.int8).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resize_bilinear_legacy(x: Tensor, out_h: int, out_w: int) -> Tensor:
    """tf.image.resize_bilinear with align_corners=False and half_pixel_centers=False.

    That mode samples at ``dst * in / out`` (no half-pixel shift), which no
    mode of ``F.interpolate`` reproduces, so it is spelled out with gathers.
    """
    in_h, in_w = x.shape[-2], x.shape[-1]

    def _axis(in_size: int, out_size: int) -> tuple[Tensor, Tensor, Tensor]:
        src = torch.arange(out_size, dtype=torch.float32) * (in_size / out_size)
        low = src.floor().long().clamp(max=in_size - 1)
        high = (low + 1).clamp(max=in_size - 1)
        return low, high, src - low.float()

    y0, y1, wy = _axis(in_h, out_h)
    x0, x1, wx = _axis(in_w, out_w)
    top, bottom = x[..., y0, :], x[..., y1, :]
    rows = (top + (bottom - top) * wy[:, None]).type_as(x)  # type_as, not .to(x.dtype): traced, it follows x
    left, right = rows[..., x0], rows[..., x1]
    return (left + (right - left) * wx).type_as(x)


def _pad_to_same(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                 value: float = 0.0) -> Tensor:
    """Pads become constants when traced: exact at any size for stride 1, at the traced size otherwise."""
    top, bottom = same_padding(int(x.shape[2]), kernel[0], stride[0], dilation[0])
    left, right = same_padding(int(x.shape[3]), kernel[1], stride[1], dilation[1])
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class GraphBody(nn.Module):
    """Runs the graph's nodes from its image input to ``outputs``, in NCHW.

    Only the nodes the outputs depend on are kept. Convolution weights become
    parameters; other constants stay Python values so tracing folds them.
    ``x * sigmoid(x)`` (how a TF export spells SiLU) becomes one ``F.silu``.
    """

    def __init__(self, graph: GraphModel, input_node: str, outputs: tuple[str, ...]):
        super().__init__()
        by_name = {node.name: node for node in graph.nodes}
        needed: set[str] = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            stack.extend(input_name(i) for i in by_name[name].inputs if not i.startswith("^"))
        steps = [n for n in graph.nodes if n.name in needed and n.op not in ("Const", "Placeholder")]
        unsupported = {n.op for n in steps} - SUPPORTED_OPS
        if unsupported:
            raise NotImplementedError(f"graph ops without a port: {sorted(unsupported)}")
        self._silu = self._silu_pairs(steps, outputs)
        self._steps: list[Node] = [n for n in steps if n.name not in self._silu.values()]
        self._input = input_node
        self._outputs = outputs
        self._scalars: dict[str, Any] = {}
        self._resize_factors: dict[str, int] = {}
        self.weights = nn.ParameterDict()
        self._param_keys: dict[str, str] = {}
        for node in self._steps:
            self._register_weights(node, graph)

    @staticmethod
    def _silu_pairs(steps: list[Node], outputs: tuple[str, ...]) -> dict[str, str]:
        """Mul node -> the Sigmoid node it absorbs, where that Sigmoid feeds nothing else."""
        by_name = {n.name: n for n in steps}
        consumers: dict[str, int] = {}
        for node in steps:
            for raw in node.inputs:
                consumers[input_name(raw)] = consumers.get(input_name(raw), 0) + 1
        pairs = {}
        for node in steps:
            if node.op != "Mul" or len(node.inputs) != 2:
                continue
            x, s = (input_name(i) for i in node.inputs)
            sigmoid = by_name.get(s)
            if (sigmoid is not None and sigmoid.op == "Sigmoid" and input_name(sigmoid.inputs[0]) == x
                    and consumers.get(s) == 1 and s not in outputs):
                pairs[node.name] = s
        return pairs

    def _param(self, const_name: str, array: np.ndarray) -> None:
        key = f"p{len(self._param_keys)}"
        self._param_keys[const_name] = key
        self.weights[key] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(array)), requires_grad=False)

    def _register_weights(self, node: Node, graph: GraphModel) -> None:
        consts = [input_name(i) for i in node.inputs if input_name(i) in graph.constants]
        for name in consts:
            if name in self._param_keys or name in self._scalars:
                continue
            array = graph.constants[name]
            if node.op in _CONV_OPS and name == input_name(node.inputs[1]):
                self._param(name, array.transpose(3, 2, 0, 1))  # HWIO -> OIHW
            elif node.op in _DEPTHWISE_OPS and name == input_name(node.inputs[1]):
                kh, kw, channels, mult = array.shape
                self._param(name, array.transpose(2, 3, 0, 1).reshape(channels * mult, 1, kh, kw))
            elif array.ndim == 1 and node.op in _CONV_OPS | _DEPTHWISE_OPS:
                self._param(name, array)  # fused bias
            else:
                self._scalars[name] = array.tolist() if array.ndim else array.item()

    def _get(self, raw: str, values: dict[str, Tensor]) -> Any:
        name = input_name(raw)
        if name in values:
            return values[name]
        if name in self._param_keys:
            return self.weights[self._param_keys[name]]
        return self._scalars[name]

    def _conv(self, node: Node, values: dict[str, Tensor], depthwise: bool) -> Tensor:
        x = self._get(node.inputs[0], values)
        weight = self._get(node.inputs[1], values)
        _, sh, sw, _ = node.attrs["strides"]
        dilations = node.attrs.get("dilations", [1, 1, 1, 1])
        dh, dw = dilations[1], dilations[2]
        if node.attrs["padding"] == "SAME":
            x = _pad_to_same(x, (weight.shape[2], weight.shape[3]), (sh, sw), (dh, dw))
        elif node.attrs["padding"] != "VALID":
            raise NotImplementedError(f"padding {node.attrs['padding']} in {node.name}")
        fused = node.attrs.get("fused_ops", [])
        bias = self._get(node.inputs[2], values) if "BiasAdd" in fused else None
        groups = x.shape[1] if depthwise else 1
        y = F.conv2d(x, weight, bias, stride=(sh, sw), dilation=(dh, dw), groups=groups)
        for op in fused:
            if op == "Relu":
                y = F.relu(y)
            elif op == "Relu6":
                y = F.relu6(y)
            elif op != "BiasAdd":
                raise NotImplementedError(f"fused op {op} in {node.name}")
        return y

    def _run(self, node: Node, values: dict[str, Tensor]) -> Tensor:
        op = node.op
        if op in _CONV_OPS:
            return self._conv(node, values, depthwise=False)
        if op in _DEPTHWISE_OPS:
            return self._conv(node, values, depthwise=True)
        if node.name in self._silu:
            return F.silu(self._get(node.inputs[0], values))
        args = [self._get(i, values) for i in node.inputs]
        if op == "Mul":
            return args[0] * args[1]
        if op in ("Add", "AddV2"):
            return args[0] + args[1]
        if op == "Relu":
            return F.relu(args[0])
        if op == "Relu6":
            return F.relu6(args[0])
        if op == "Sigmoid":
            return torch.sigmoid(args[0])
        if op == "Identity":
            return args[0]
        if op == "Mean":
            axes = [_NHWC_TO_NCHW_AXIS[a] for a in np.atleast_1d(args[1]).tolist()]
            return args[0].mean(dim=axes, keepdim=bool(node.attrs.get("keep_dims", False)))
        if op == "ConcatV2":
            return torch.cat(args[:-1], dim=_NHWC_TO_NCHW_AXIS[args[-1]])
        if op == "Pad":
            return self._pad(node, args[0], args[1])
        if op == "MaxPool":
            return self._max_pool(node, args[0])
        if op == "ResizeBilinear":
            if node.attrs.get("align_corners") or node.attrs.get("half_pixel_centers"):
                raise NotImplementedError(f"resize mode of {node.name}")
            out_h, out_w = args[1]
            return resize_bilinear_legacy(args[0], out_h, out_w)
        if op == "ResizeNearestNeighbor":
            return self._resize_nearest(node, args[0], args[1])
        raise NotImplementedError(op)

    @staticmethod
    def _pad(node: Node, x: Tensor, paddings: list[list[int]]) -> Tensor:
        (n0, n1), (top, bottom), (left, right), (c0, c1) = paddings
        if n0 or n1 or c0 or c1:
            raise NotImplementedError(f"padding of batch or channels in {node.name}")
        return F.pad(x, (left, right, top, bottom))

    @staticmethod
    def _max_pool(node: Node, x: Tensor) -> Tensor:
        _, kh, kw, _ = node.attrs["ksize"]
        _, sh, sw, _ = node.attrs["strides"]
        if node.attrs["padding"] == "SAME":
            x = _pad_to_same(x, (kh, kw), (sh, sw), (1, 1), value=float("-inf"))
        elif node.attrs["padding"] != "VALID":
            raise NotImplementedError(f"padding {node.attrs['padding']} in {node.name}")
        return F.max_pool2d(x, (kh, kw), (sh, sw))

    def _resize_nearest(self, node: Node, x: Tensor, size: list[int]) -> Tensor:
        """Whole-number upscaling only, written as a scale factor so the module is size-agnostic.

        The graph's constant ``size`` holds at its native input size only, so the factor is
        read from the first run (at that size) and kept: the eager body then also runs, and
        exports (exporters.int8), at any other multiple of 32.
        For an integer factor TF's half-pixel nearest and PyTorch's nearest pick the same source pixel.
        """
        if node.attrs.get("align_corners"):
            raise NotImplementedError(f"resize mode of {node.name}")
        factor = self._resize_factors.get(node.name)
        if factor is None:
            out_h, out_w = size
            factor = out_h // int(x.shape[2])
            if out_h != factor * x.shape[2] or out_w != factor * x.shape[3] or factor < 1:
                raise NotImplementedError(f"{node.name} resizes by a non-integer factor")
            self._resize_factors[node.name] = factor
        return F.interpolate(x, scale_factor=float(factor), mode="nearest")

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """``images``: N x 3 x H x W, in whatever range the graph was trained on."""
        values: dict[str, Tensor] = {self._input: images}
        for node in self._steps:
            values[node.name] = self._run(node, values)
        return tuple(values[name] for name in self._outputs)
