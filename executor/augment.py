"""Training-time augmentation on letterboxed samples: flip, scale jitter, colour jitter.

Every function takes a numpy ``Generator`` so a batch is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from executor.data import Sample

PAD = 114
SCALE_RANGE = (0.75, 1.25)
MIN_VISIBLE = 0.4  # a box cut by the border is kept if at least this much of it is inside
MIN_SIDE = 2.0  # input pixels


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    scale_jitter: bool = True
    color_jitter: bool = True


def _scale_jitter(sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zoom the image content by a random factor and place it at a random offset."""
    size = sample.image.shape[0]
    cw, ch = sample.content_size
    s = rng.uniform(*SCALE_RANGE)
    nw, nh = max(1, round(cw * s)), max(1, round(ch * s))
    content = Image.fromarray(sample.image[:ch, :cw]).resize((nw, nh), Image.BILINEAR)
    ox = int(rng.integers(0, size - nw + 1)) if nw <= size else -int(rng.integers(0, nw - size + 1))
    oy = int(rng.integers(0, size - nh + 1)) if nh <= size else -int(rng.integers(0, nh - size + 1))
    canvas = np.full((size, size, 3), PAD, np.uint8)
    src = np.asarray(content)[max(0, -oy) : max(0, -oy) + size, max(0, -ox) : max(0, -ox) + size]
    canvas[max(0, oy) : max(0, oy) + src.shape[0], max(0, ox) : max(0, ox) + src.shape[1]] = src
    sx, sy = nw / cw, nh / ch
    boxes = sample.boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([ox, oy, ox, oy], np.float32)
    clipped = np.clip(boxes, 0, size)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (
        (visible >= MIN_VISIBLE * np.maximum(area, 1e-6))
        & (clipped[:, 2] - clipped[:, 0] >= MIN_SIDE)
        & (clipped[:, 3] - clipped[:, 1] >= MIN_SIDE)
    )
    return canvas, clipped[keep], sample.classes[keep]


def _color_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, each by a factor in [0.7, 1.3]."""
    x = image.astype(np.float32)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray[..., None] + (x - gray[..., None]) * rng.uniform(0.7, 1.3)  # saturation
    x = (x - gray.mean()) * rng.uniform(0.7, 1.3) + gray.mean()  # contrast
    x *= rng.uniform(0.7, 1.3)  # brightness
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented copy: ``(image uint8 (S,S,3), boxes (K,4) input px, classes (K,))``."""
    if cfg.scale_jitter:
        image, boxes, classes = _scale_jitter(sample, rng)
    else:
        image, boxes, classes = sample.image, sample.boxes.copy(), sample.classes
    if cfg.flip and rng.random() < 0.5:
        size = image.shape[1]
        image = image[:, ::-1]
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
    if cfg.color_jitter:
        image = _color_jitter(image, rng)
    return np.ascontiguousarray(image), boxes.astype(np.float32).reshape(-1, 4), classes
