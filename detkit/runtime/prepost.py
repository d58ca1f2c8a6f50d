"""Pre- and post-processing shared by every runtime backend and by the trainer.

Only the session differs between onnxruntime, OpenVINO and TensorRT; what goes in and comes out is
decided here, driven by the model's :class:`detkit.manifest.ModelSpec`:

* :func:`letterbox` scales the longest edge to the input size, keeps the aspect ratio and pads
  (top-left aligned, so un-letterboxing is a single divide);
* :func:`decode_centernet` turns the built-in detector's raw head outputs (class heatmap after
  sigmoid, box distances in input pixels) into boxes, entirely vectorised;
* :func:`unletterbox` maps boxes back to original image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model input: ``input = original * scale`` (top-left)."""

    scale: float
    width: int  # original width in pixels
    height: int  # original height in pixels


def letterbox(image: Image.Image, size: int, pad_value: int = 114) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` so its longest edge is ``size`` and pad to ``size``x``size``.

    Returns an HWC uint8 RGB array and the :class:`Letterbox` needed to map boxes back.
    """
    image = image.convert("RGB")
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image.resize((nw, nh), Image.BILINEAR)
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    canvas[:nh, :nw] = np.asarray(resized)
    return canvas, Letterbox(scale=scale, width=w, height=h)


def normalize(batch_hwc: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW, ``(x / 255 - mean) / std``."""
    x = batch_hwc.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _maxpool3(x: np.ndarray) -> np.ndarray:
    """3x3 max pool, stride 1, same padding, over the last two axes."""
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], constant_values=-np.inf)
    rows = np.maximum(np.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    return np.maximum(np.maximum(rows[..., :, :-2], rows[..., :, 1:-1]), rows[..., :, 2:])


def decode_centernet(
    heatmap: np.ndarray, distances: np.ndarray, stride: int, conf: float = 0.25, max_det: int = 100
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode CenterNet/TTFNet-style outputs for a batch.

    ``heatmap``: (N, C, H, W) class probabilities (sigmoid already applied in the model).
    ``distances``: (N, 4, H, W) left, top, right, bottom distances in input pixels from the cell
    centre ``((x + 0.5) * stride, (y + 0.5) * stride)``.
    Returns per image ``(boxes_xyxy float32 (K, 4) in input pixels, scores (K,), class_ids (K,))``,
    sorted by score descending, at most ``max_det`` boxes with score >= ``conf``.
    """
    n, c, h, w = heatmap.shape
    peaks = np.where(_maxpool3(heatmap) == heatmap, heatmap, 0.0).reshape(n, -1)
    k = min(max_det, peaks.shape[1])
    top = np.argpartition(-peaks, k - 1, axis=1)[:, :k] if k < peaks.shape[1] else np.tile(np.arange(k), (n, 1))
    out = []
    for i in range(n):  # per image only; everything inside is vectorised
        idx = top[i]
        scores = peaks[i, idx]
        keep = scores >= conf
        idx, scores = idx[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")
        idx, scores = idx[order], scores[order]
        cls = idx // (h * w)
        cell = idx % (h * w)
        ys, xs = cell // w, cell % w
        cx = (xs + 0.5) * stride
        cy = (ys + 0.5) * stride
        d = distances[i][:, ys, xs]  # (4, K)
        boxes = np.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], axis=1).astype(np.float32)
        out.append((boxes, scores.astype(np.float32), cls.astype(np.int64)))
    return out


def unletterbox(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Map xyxy boxes from model-input pixels back to the original image, clipped to it."""
    b = boxes / lb.scale
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, lb.width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, lb.height)
    return b
