"""Seeded synthetic detection scenes: the sample dataset every demo and test starts from.

Each scene is a textured background (gradient + blurred noise + clutter lines) with 1-6 filled
shapes of :data:`CLASSES`, of varied sizes and colours, allowed to overlap. Written as a
YMIR-layout VOC zip: ``images/*.jpg`` and ``gt/*.xml``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from detkit.annotations import Box, ImageAnnotation
from detkit.io.voc import to_voc

CLASSES = ("circle", "square", "triangle")


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    base = rng.integers(40, 216, size=3).astype(np.float32)
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    grad = base + 40 * (gx * rng.uniform(-1, 1, 3) + gy * rng.uniform(-1, 1, 3))
    noise = rng.normal(0, 1, size=(h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    noise_img = Image.fromarray(np.uint8(np.clip(128 + 40 * noise, 0, 255))).resize((w, h), Image.BICUBIC)
    arr = np.clip(grad + (np.asarray(noise_img, dtype=np.float32) - 128) * 0.6, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):  # clutter lines: texture that is not an object
        pts = [tuple(int(v) for v in rng.integers(0, [w, h])) for _ in range(2)]
        draw.line(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 4)))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def _draw_shape(draw: ImageDraw.ImageDraw, cls: str, x1: int, y1: int, x2: int, y2: int, color) -> None:
    if cls == "circle":
        draw.ellipse([x1, y1, x2, y2], fill=color)
    elif cls == "square":
        draw.rectangle([x1, y1, x2, y2], fill=color)
    else:
        draw.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=color)


def make_scene(rng: np.random.Generator, index: int, class_weights: tuple[float, ...] | None = None,
               side_range: tuple[float, float] = (0.08, 0.4)) -> tuple[Image.Image, ImageAnnotation]:
    """One scene and its ground truth; ``class_weights`` (per :data:`CLASSES`) skews which shapes appear,
    ``side_range`` their size as a fraction of the shorter image side (defaults: uniform, 0.08-0.4)."""
    w = int(rng.integers(20, 41)) * 16
    h = int(rng.integers(15, 31)) * 16
    img = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    ann = ImageAnnotation(filename=f"scene_{index:06d}.jpg", width=w, height=h)
    for _ in range(int(rng.integers(1, 7))):
        if class_weights is None:
            cls = CLASSES[int(rng.integers(len(CLASSES)))]
        else:
            cls = CLASSES[int(rng.choice(len(CLASSES), p=np.asarray(class_weights) / np.sum(class_weights)))]
        side = int(rng.uniform(*side_range) * min(w, h))
        bw = side if cls != "square" or rng.random() < 0.5 else int(side * rng.uniform(0.7, 1.3))
        bh = side if cls == "circle" else int(side * rng.uniform(0.8, 1.2))
        x1 = int(rng.integers(0, max(1, w - bw)))
        y1 = int(rng.integers(0, max(1, h - bh)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        _draw_shape(draw, cls, x1, y1, x1 + bw, y1 + bh, color)
        ann.boxes.append(Box(x1, y1, x1 + bw, y1 + bh, cls))
    return img, ann


def scenes(count: int, seed: int = 0, class_weights: tuple[float, ...] | None = None,
           side_range: tuple[float, float] = (0.08, 0.4), prefix: str = "scene") -> Iterator[tuple[Image.Image, ImageAnnotation]]:
    """Yield ``count`` scenes, the same ones for the same seed (see :func:`make_scene` for the options)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        img, ann = make_scene(rng, i, class_weights, side_range)
        if prefix != "scene":
            ann.filename = f"{prefix}_{i:06d}.jpg"
        yield img, ann


def write_sample_zip(
    out: str | Path, images: int = 100, seed: int = 0, progress: Callable[[int], None] | None = None
) -> Path:
    """Write a YMIR-layout VOC zip (``images/``, ``gt/``) of ``images`` seeded scenes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for img, ann in scenes(images, seed):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
            zf.writestr(f"images/{ann.filename}", buf.getvalue())
            zf.writestr(f"gt/{Path(ann.filename).stem}.xml", to_voc(ann))
            if progress:
                progress(1)
    return out
