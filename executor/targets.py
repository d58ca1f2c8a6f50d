"""TTFNet-style training targets and losses.

Targets per image, on the stride-4 grid:

* ``heatmap`` (C, H, W): an elliptical gaussian per box, peak exactly 1 at the box centre's cell,
  sigma proportional to the box's width/height (TTFNet's alpha = 0.54), max over boxes;
* ``box`` (4, H, W) xyxy in input pixels and ``weight`` (H, W): every cell inside a box's
  gaussian regresses that box, weighted by the gaussian (normalised per box) times log(area), so
  big boxes don't drown small ones and the centre counts most. Smaller boxes win shared cells.

Losses: CenterNet's penalty-reduced focal loss on the heatmap, GIoU on the decoded boxes.
"""

from __future__ import annotations

import numpy as np
import torch

ALPHA = 0.54
MIN_RADIUS = 1  # cells: even the smallest box gets a 3x3 gaussian, not a one-cell spike (learns faster)
HM_WEIGHT = 1.0
BOX_WEIGHT = 5.0


def make_targets(
    boxes: np.ndarray, classes: np.ndarray, num_classes: int, size: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(heatmap (C,H,W), box (4,H,W), weight (H,W))`` for one image, boxes in input pixels."""
    g = size // stride
    heatmap = np.zeros((num_classes, g, g), np.float32)
    box_t = np.zeros((4, g, g), np.float32)
    weight = np.zeros((g, g), np.float32)
    if len(boxes) == 0:
        return heatmap, box_t, weight
    wh = boxes[:, 2:] - boxes[:, :2]
    order = np.argsort(-(wh[:, 0] * wh[:, 1]), kind="stable")  # big first: small ones overwrite
    ys, xs = np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32)
    for k in order:
        x1, y1, x2, y2 = boxes[k]
        cx = min(int((x1 + x2) / 2 / stride), g - 1)
        cy = min(int((y1 + y2) / 2 / stride), g - 1)
        rw = max(MIN_RADIUS, int(wh[k, 0] / stride / 2 * ALPHA))
        rh = max(MIN_RADIUS, int(wh[k, 1] / stride / 2 * ALPHA))
        sx, sy = (2 * rw + 1) / 6, (2 * rh + 1) / 6
        xa, xb, ya, yb = max(0, cx - rw), min(g, cx + rw + 1), max(0, cy - rh), min(g, cy + rh + 1)
        gx = np.exp(-((xs[xa:xb] - cx) ** 2) / (2 * sx * sx))
        gy = np.exp(-((ys[ya:yb] - cy) ** 2) / (2 * sy * sy))
        gauss = gy[:, None] * gx[None, :]
        c = classes[k]
        np.maximum(heatmap[c, ya:yb, xa:xb], gauss, out=heatmap[c, ya:yb, xa:xb])
        box_t[:, ya:yb, xa:xb] = boxes[k][:, None, None]
        weight[ya:yb, xa:xb] = gauss / gauss.sum() * np.log(max(wh[k, 0] * wh[k, 1], 2.0))
    return heatmap, box_t, weight


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), averaged over object centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p).pow(2) * pos
    neg_loss = torch.log(1 - p) * p.pow(2) * (1 - target).pow(4) * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def giou_loss(distances: torch.Tensor, box_t: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """Weighted ``1 - GIoU`` between decoded boxes and their targets on weighted cells."""
    n, _, h, w = distances.shape
    mask = weight > 0
    if not bool(mask.any()):
        return distances.sum() * 0.0
    ys = (torch.arange(h, dtype=distances.dtype, device=distances.device) + 0.5) * stride
    xs = (torch.arange(w, dtype=distances.dtype, device=distances.device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    cx, cy = cx.expand(n, h, w)[mask], cy.expand(n, h, w)[mask]
    d = distances.permute(0, 2, 3, 1)[mask]  # (M, 4)
    t = box_t.permute(0, 2, 3, 1)[mask]
    wt = weight[mask]
    px1, py1, px2, py2 = cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]
    tx1, ty1, tx2, ty2 = t.unbind(1)
    iw = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
    ih = (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
    inter = iw * ih
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    iou = inter / union.clamp(min=1e-6)
    enclose = (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)) * (torch.maximum(py2, ty2) - torch.minimum(py1, ty1))
    giou = iou - (enclose - union) / enclose.clamp(min=1e-6)
    return ((1 - giou) * wt).sum() / (wt.sum() + 1e-4)


def detection_loss(
    logits: torch.Tensor, distances: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor], stride: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (for logging)."""
    heatmap, box_t, weight = targets
    hm = focal_loss(logits, heatmap)
    box = giou_loss(distances, box_t, weight, stride)
    total = HM_WEIGHT * hm + BOX_WEIGHT * box
    return total, {"heatmap": float(hm.detach()), "box": float(box.detach())}
