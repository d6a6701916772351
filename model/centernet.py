"""PyTorch port of the MobileNetV3-large CenterNet COCO detector shipped as a TF.js graph.

The convolutional body is rebuilt op by op from the GraphDef (so the port
follows the published graph exactly, including TensorFlow's asymmetric SAME
padding and its legacy bilinear resize), then traced to TorchScript. The
CenterNet decode (3x3 peak picking, top-k, box assembly) is written natively
so the exported module can map boxes back to any input image size.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.tfjs_graph import GraphModel, Node

INPUT_SIZE = 512
# Images are shrunk (antialiased, by Pillow) to this longest side before the
# graph's own non-antialiased bilinear resize to 512: measured best on
# ../shared/eval (docs/performance.md, "Input size").
PRESHRINK_SIDE = 640
INPUT_NODE = "tower_0/images"
KEYPOINTS_NODE = "tower_0/keypoints"
WH_NODE = "tower_0/wh"
STRIDE_CONST = "tower_0/mul_3/y"
TOPK_CONST = "tower_0/TopKV2/k"
# Picked from the threshold sweep in docs/accuracy.md (heatmap peaks are not calibrated like
# Mask R-CNN scores: at 0.75 this model reports nothing).
DEFAULT_SCORE_THRESHOLD = 0.3

_CONV_OPS = {"_FusedConv2D", "Conv2D"}
_DEPTHWISE_OPS = {"FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}


def _input_name(raw: str) -> str:
    return raw.split(":")[0]


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME puts the odd pixel of padding after, unlike PyTorch's symmetric pad."""
    out = math.ceil(size / stride)
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
    rows = top + (bottom - top) * wy[:, None]
    left, right = rows[..., x0], rows[..., x1]
    return left + (right - left) * wx


class GraphBody(nn.Module):
    """Runs the graph's nodes from the image input to the keypoint and size heads, in NCHW.

    Only nodes the two heads depend on are kept; the graph's own decode is
    replaced by :func:`decode`. Convolution weights become parameters; scalar
    constants stay Python floats so tracing folds them.
    """

    def __init__(self, graph: GraphModel, outputs: tuple[str, ...] = (KEYPOINTS_NODE, WH_NODE)):
        super().__init__()
        by_name = {node.name: node for node in graph.nodes}
        needed: set[str] = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            stack.extend(_input_name(i) for i in by_name[name].inputs if not i.startswith("^"))
        self._steps: list[Node] = [n for n in graph.nodes if n.name in needed and n.op not in ("Const", "Placeholder")]
        self._outputs = outputs
        self._scalars: dict[str, Any] = {}
        self.weights = nn.ParameterDict()
        self._param_keys: dict[str, str] = {}
        for node in self._steps:
            self._register_weights(node, graph)
        unsupported = {n.op for n in self._steps} - set(self._OPS)
        if unsupported:
            raise NotImplementedError(f"graph ops without a port: {sorted(unsupported)}")

    def _param(self, const_name: str, array: np.ndarray) -> None:
        key = f"p{len(self._param_keys)}"
        self._param_keys[const_name] = key
        self.weights[key] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(array)), requires_grad=False)

    def _register_weights(self, node: Node, graph: GraphModel) -> None:
        consts = [_input_name(i) for i in node.inputs if _input_name(i) in graph.constants]
        for name in consts:
            if name in self._param_keys or name in self._scalars:
                continue
            array = graph.constants[name]
            if node.op in _CONV_OPS and name == _input_name(node.inputs[1]):
                self._param(name, array.transpose(3, 2, 0, 1))  # HWIO -> OIHW
            elif node.op in _DEPTHWISE_OPS and name == _input_name(node.inputs[1]):
                kh, kw, channels, mult = array.shape
                self._param(name, array.transpose(2, 3, 0, 1).reshape(channels * mult, 1, kh, kw))
            elif array.ndim == 1 and node.op in _CONV_OPS | _DEPTHWISE_OPS:
                self._param(name, array)  # fused bias
            else:
                self._scalars[name] = array.tolist() if array.ndim else array.item()

    def _get(self, raw: str, values: dict[str, Tensor]) -> Any:
        name = _input_name(raw)
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
            top, bottom = _same_padding(x.shape[2], weight.shape[2], sh, dh)
            left, right = _same_padding(x.shape[3], weight.shape[3], sw, dw)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
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
        args = [self._get(i, values) for i in node.inputs]
        if op == "Mul":
            return args[0] * args[1]
        if op == "Add":
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
        if op == "ResizeBilinear":
            if node.attrs.get("align_corners") or node.attrs.get("half_pixel_centers"):
                raise NotImplementedError(f"resize mode of {node.name}")
            out_h, out_w = args[1]
            return resize_bilinear_legacy(args[0], out_h, out_w)
        raise NotImplementedError(op)

    _OPS = (
        "_FusedConv2D", "Conv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative",
        "Mul", "Add", "Relu", "Relu6", "Sigmoid", "Identity", "Mean", "ConcatV2", "ResizeBilinear",
    )

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """``images``: N x 3 x 512 x 512 RGB float in 0..255."""
        values: dict[str, Tensor] = {INPUT_NODE: images}
        for node in self._steps:
            values[node.name] = self._run(node, values)
        return tuple(values[name] for name in self._outputs)


def decode(keypoints: Tensor, wh: Tensor, k: int, stride: float) -> tuple[Tensor, Tensor, Tensor]:
    """CenterNet decode for one image, identical to the graph's own.

    Peaks are heatmap cells equal to their 3x3 max; the top ``k`` over all
    classes and cells are taken in NHWC order (as the graph flattens), and each
    box is the peak's centre (cell * stride) minus/plus the four predicted
    distances (left, top, right, bottom).
    """
    channels, width = keypoints.shape[1], keypoints.shape[3]
    peaks = F.max_pool2d(keypoints, 3, 1, 1)
    kept = keypoints * (keypoints == peaks).to(keypoints.dtype)
    flat = kept[0].permute(1, 2, 0).reshape(-1)
    scores, index = flat.topk(k)
    labels = index % channels
    cell = torch.div(index, channels, rounding_mode="floor")
    ys = torch.div(cell, width, rounding_mode="floor").to(torch.float32) * stride
    xs = (cell % width).to(torch.float32) * stride
    sizes = wh[0].permute(1, 2, 0).reshape(-1, 4)[cell]
    boxes = torch.stack([xs - sizes[:, 0], ys - sizes[:, 1], xs + sizes[:, 2], ys + sizes[:, 3]], dim=1)
    return boxes, labels, scores


class CenterNetDetector(nn.Module):
    """The exported detector: one RGB image of any size in, boxes/labels/scores out.

    Same call signature as the Mask R-CNN export (``forward(image[3,H,W] in
    0..1)``), so the serving code cannot tell the two apart. Boxes come back in
    the input image's pixels; labels index the sidecar's category list.
    """

    def __init__(self, body: nn.Module, stride: float, max_detections: int):
        super().__init__()
        self.body = body
        self.stride = stride
        self.max_detections = max_detections
        self.input_size = INPUT_SIZE

    @torch.jit.export
    def detect_raw(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The graph's own output for a 1x3x512x512 input in 0..255 (boxes in input pixels)."""
        keypoints, wh = self.body(images)
        return decode(keypoints, wh, self.max_detections, self.stride)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        height, width = image.shape[-2], image.shape[-1]
        size = self.input_size
        resized = F.interpolate(
            image.unsqueeze(0) * 255.0, size=[size, size], mode="bilinear", align_corners=False, antialias=True
        )
        boxes, labels, scores = self.detect_raw(resized)
        scale = torch.tensor([width / size, height / size, width / size, height / size], dtype=boxes.dtype)
        boxes = boxes * scale
        boxes = torch.stack(
            [
                boxes[:, 0].clamp(0.0, float(width)),
                boxes[:, 1].clamp(0.0, float(height)),
                boxes[:, 2].clamp(0.0, float(width)),
                boxes[:, 3].clamp(0.0, float(height)),
            ],
            dim=1,
        )
        return boxes, labels, scores


def build_scripted(graph: GraphModel) -> torch.jit.ScriptModule:
    """Trace the graph body at its fixed input size and script the wrapper around it."""
    body = GraphBody(graph).eval()
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        # Shapes are fixed at 512x512, so padding sizes read from them are meant to be constants.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(body, example, check_trace=False)
    stride = float(graph.constants[STRIDE_CONST])
    k = int(graph.constants[TOPK_CONST])
    return torch.jit.script(CenterNetDetector(traced, stride, k).eval())
