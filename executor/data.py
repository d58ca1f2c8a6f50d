"""Reading the task's images and VOC annotations into memory, letterboxed for the model.

Images are decoded once and kept as the model sees them (``input_size`` square, uint8, RGB,
letterboxed with :func:`detkit.runtime.prepost.letterbox` — the very function runtimes use), so
an epoch costs no JPEG decoding. Boxes are kept both in input pixels (training targets) and in
original pixels (evaluation against the ground truth).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from detkit.errors import BadInput, UnknownClasses
from detkit.io.voc import parse_voc
from detkit.runtime.prepost import Letterbox, letterbox

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One image as the model sees it plus its ground truth."""

    path: Path
    image: np.ndarray  # (S, S, 3) uint8, letterboxed
    lb: Letterbox
    boxes: np.ndarray  # (K, 4) float32 xyxy in input pixels
    classes: np.ndarray  # (K,) int64
    gt_boxes: np.ndarray  # (K, 4) float32 xyxy in original pixels

    @property
    def content_size(self) -> tuple[int, int]:
        """Width and height of the image inside the letterboxed canvas."""
        return max(1, round(self.lb.width * self.lb.scale)), max(1, round(self.lb.height * self.lb.scale))


def open_image(path: Path) -> Image.Image:
    """Open and decode an image file; a missing or broken one raises :class:`BadInput`."""
    if not path.is_file():
        raise BadInput(f"asset not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise BadInput(f"asset {path} is not a readable image: {exc}") from None


def read_annotation(path: Path, class_index: dict[str, int], unknown: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (original pixels) and class ids of one VOC file; unknown class names go to ``unknown``."""
    if not path.is_file():
        raise BadInput(f"annotation not found: {path}")
    ann = parse_voc(path.read_bytes(), str(path))
    boxes, classes = [], []
    for b in ann.boxes:
        if b.name not in class_index:
            unknown.add(b.name)
            continue
        if b.x2 <= b.x1 or b.y2 <= b.y1:
            raise BadInput(f"{path}: box of {b.name!r} has no area ({b.x1}, {b.y1}, {b.x2}, {b.y2})")
        boxes.append((b.x1, b.y1, b.x2, b.y2))
        classes.append(class_index[b.name])
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def load_samples(
    rows: Sequence[tuple[Path, Path | None]],
    class_names: Sequence[str],
    size: int,
    progress: Callable[[float], None] | None = None,
) -> list[Sample]:
    """Decode and letterbox every indexed image with its annotation.

    Raises :class:`UnknownClasses` when annotations name classes outside ``class_names``.
    """
    class_index = {n: i for i, n in enumerate(class_names)}
    unknown: set[str] = set()
    samples = []
    for i, (asset, ann_path) in enumerate(rows):
        if ann_path is not None:
            gt, classes = read_annotation(ann_path, class_index, unknown)
        else:
            gt, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        canvas, lb = letterbox(open_image(asset), size)
        samples.append(Sample(asset, canvas, lb, gt * lb.scale, classes, gt))
        if progress and i % 20 == 0:
            progress((i + 1) / len(rows))
    if unknown:
        raise UnknownClasses(sorted(unknown), where="the annotations (not in config class_names)")
    return samples


def load_images(paths: Sequence[Path], size: int) -> tuple[np.ndarray, list[Letterbox]]:
    """Letterbox a batch of unannotated images: ``(N, S, S, 3)`` uint8 and their letterboxes."""
    canvases, lbs = [], []
    for p in paths:
        canvas, lb = letterbox(open_image(p), size)
        canvases.append(canvas)
        lbs.append(lb)
    return np.stack(canvases), lbs
