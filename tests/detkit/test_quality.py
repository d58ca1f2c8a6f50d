"""The import-time quality score orders images the way a person would."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image, ImageFilter

from detkit.quality import image_quality, quality_parts


def scene(seed: int = 0, size=(480, 640)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full(size, 110, np.float32)
    for _ in range(40):  # rectangles with edges
        y, x = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
        img[y:y + rng.integers(10, 40), x:x + rng.integers(10, 40)] = rng.integers(20, 235)
    return np.clip(img + rng.normal(0, 4, size), 0, 255).astype(np.uint8)


def blurred(a: np.ndarray, r: float) -> np.ndarray:
    return np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(r)))


def test_score_is_in_range_and_orders_sharp_blurred_flat_dark():
    sharp = scene()
    scores = [image_quality(x) for x in (sharp, blurred(sharp, 4), np.full((100, 100), 128, np.uint8),
                                         np.zeros((100, 100), np.uint8))]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.7 and scores[0] > scores[1] + 0.15
    assert scores[2] < 0.3 and scores[3] < scores[2]


def test_parts_exposure_penalises_clipping():
    img = scene()
    blown = img.copy()
    blown[: img.shape[0] * 2 // 3] = 255
    assert quality_parts(blown)["exposure"] < 0.5 < quality_parts(img)["exposure"]


def test_tiny_or_odd_input_does_not_crash():
    assert image_quality(np.zeros((2, 2), np.uint8)) == 0.0
    assert 0 <= image_quality(scene(size=(2000, 3000))) <= 1


def test_fast_on_a_thumbnail():
    img = scene(size=(192, 256))
    started = time.perf_counter()
    for _ in range(50):
        image_quality(img)
    assert (time.perf_counter() - started) / 50 < 0.02
