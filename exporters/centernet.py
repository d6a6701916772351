"""PyTorch port of the MobileNetV3-large CenterNet COCO detector shipped as a TF.js graph.

The convolutional body is rebuilt op by op from the GraphDef by
:class:`exporters.tfjs_torch.GraphBody`, then traced to TorchScript. The
CenterNet decode (3x3 peak picking, top-k, box assembly) is written natively
so the exported module can map boxes back to any input image size.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from exporters.compute import add_numerics_switch, to_compute
from exporters.tfjs_graph import GraphModel
from exporters.tfjs_torch import GraphBody

INPUT_SIZE = 512
# Images are shrunk (antialiased, by Pillow) to this longest side before the
# graph's own non-antialiased bilinear resize to 512: measured best on
# ../shared/eval (docs/accuracy.md, "input size").
PRESHRINK_SIDE = 640
INPUT_NODE = "tower_0/images"
KEYPOINTS_NODE = "tower_0/keypoints"
WH_NODE = "tower_0/wh"
STRIDE_CONST = "tower_0/mul_3/y"
TOPK_CONST = "tower_0/TopKV2/k"
# Picked from the threshold sweep in docs/accuracy.md (heatmap peaks are not calibrated like
# Mask R-CNN scores: at 0.75 this model reports nothing).
# The part model.precision converts to bf16 / channels-last: the convolutional body.
PRECISION_MODULE = "body"
DEFAULT_SCORE_THRESHOLD = 0.3

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
        add_numerics_switch(self)

    @torch.jit.export
    def detect_raw(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The graph's own output for a 1x3x512x512 input in 0..255 (boxes in input pixels)."""
        keypoints, wh = self.body(to_compute(images, self.compute_dtype, self.channels_last))
        return decode(keypoints.float(), wh.float(), self.max_detections, self.stride)

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
    body = GraphBody(graph, INPUT_NODE, (KEYPOINTS_NODE, WH_NODE)).eval()
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        # Shapes are fixed at 512x512, so padding sizes read from them are meant to be constants.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(body, example, check_trace=False)
    stride = float(graph.constants[STRIDE_CONST])
    k = int(graph.constants[TOPK_CONST])
    return torch.jit.script(CenterNetDetector(traced, stride, k).eval())
