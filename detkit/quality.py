"""Image quality computed at import: one score in [0, 1], cheap enough for every image.

The score is measured on a grey copy whose longest side is at most about 256 px (import decodes
JPEGs straight to that size), so it does not depend much on the original resolution::

    sharpness = 1 - exp(-var(laplacian(grey)) / 150)   # 4-neighbour Laplacian, grey in 0..255
    exposure  = clip(1 - 2 * clipped_share, 0, 1)       # share of pixels <= 4 or >= 251
    contrast  = min(std(grey) / 50, 1)
    quality   = 0.5 * sharpness + 0.25 * exposure + 0.25 * contrast

A sharp, well exposed, contrasted photo scores near 1; a blurred one loses up to half; a flat grey
or black frame scores near 0. YMIR's ``image_quality`` from a VOC file, when present, is kept
instead of this score.
"""

from __future__ import annotations

import numpy as np

SHARPNESS_SCALE = 150.0
CONTRAST_SCALE = 50.0
CLIP_LOW, CLIP_HIGH = 4, 251
WEIGHTS = (0.5, 0.25, 0.25)  # sharpness, exposure, contrast


_LEVELS = np.arange(256, dtype=np.float64)


def _downscale(grey: np.ndarray, side: int = 256) -> np.ndarray:
    factor = max(grey.shape) // side
    if factor <= 1:
        return grey
    h, w = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
    return grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)).astype(np.uint8)


def quality_parts(grey: np.ndarray) -> dict[str, float]:
    """The three parts of the score (each in [0, 1]) for a 2-D grey array (0..255)."""
    if grey.ndim != 2 or min(grey.shape) < 3:
        return {"sharpness": 0.0, "exposure": 0.0, "contrast": 0.0}
    g8 = np.ascontiguousarray(_downscale(np.asarray(grey, dtype=np.uint8)))
    # exposure and contrast from one histogram pass (cheaper than several reductions on small images)
    hist = np.bincount(g8.ravel(), minlength=256).astype(np.float64)
    n = g8.size
    mean = float(hist @ _LEVELS) / n
    std = max(float(hist @ (_LEVELS * _LEVELS)) / n - mean * mean, 0.0) ** 0.5
    clipped = float(hist[: CLIP_LOW + 1].sum() + hist[CLIP_HIGH:].sum()) / n
    g = g8.astype(np.float32)
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]).ravel()
    m = float(lap.sum()) / lap.size
    lap_var = max(float(lap @ lap) / lap.size - m * m, 0.0)
    sharpness = 1.0 - float(np.exp(-lap_var / SHARPNESS_SCALE))
    exposure = min(max(1.0 - 2.0 * clipped, 0.0), 1.0)
    contrast = min(std / CONTRAST_SCALE, 1.0)
    return {"sharpness": sharpness, "exposure": exposure, "contrast": contrast}


def image_quality(grey: np.ndarray) -> float:
    """The documented quality score in [0, 1] of a grey image (see the module docstring)."""
    p = quality_parts(grey)
    score = WEIGHTS[0] * p["sharpness"] + WEIGHTS[1] * p["exposure"] + WEIGHTS[2] * p["contrast"]
    return round(min(max(score, 0.0), 1.0), 4)
