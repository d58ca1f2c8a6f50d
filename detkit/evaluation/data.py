"""Evaluation inputs: per-image records for callers, and the flat arrays the evaluators run on.

Callers hand in one :class:`ImageGT` and one :class:`ImageDT` per image (``xyxy`` pixel boxes).
Everything downstream works on a :class:`FlatSet`: every box of the whole set in a few numpy
arrays (COCO ``xywh`` layout, image and class as indices), so matching and accumulation are
vectorised across images instead of looping over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detkit.errors import BadInput

__all__ = ["ImageGT", "ImageDT", "FlatGT", "FlatDT", "FlatSet", "flat_from_images", "flat_from_lists"]


@dataclass
class ImageGT:
    """Ground truth of one image.

    ``boxes`` are ``(N, 4)`` ``xyxy`` pixels and ``classes`` ``(N,)`` class ids. ``iscrowd`` marks
    crowd regions (COCO: ignored, may absorb many detections). ``difficult`` marks VOC difficult
    boxes (ignored by VOC AP and by the box labels; COCO evaluation does not look at it, as in
    pycocotools). ``areas`` is COCO's ``area`` field used for the small/medium/large ranges; it
    defaults to the box area.
    """

    boxes: np.ndarray
    classes: np.ndarray
    iscrowd: np.ndarray | None = None
    difficult: np.ndarray | None = None
    areas: np.ndarray | None = None


@dataclass
class ImageDT:
    """Detections of one image: ``(N, 4)`` ``xyxy`` boxes, ``(N,)`` scores and class ids."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


@dataclass
class FlatGT:
    """All ground-truth boxes of a set, in input order (the order breaks COCO's IoU ties)."""

    image: np.ndarray  # int64 index into FlatSet.image_ids
    category: np.ndarray  # int64 index into FlatSet.class_ids
    xywh: np.ndarray  # (G, 4) float64
    area: np.ndarray  # float64, COCO "area" field
    crowd: np.ndarray  # bool
    difficult: np.ndarray  # bool (VOC)
    ann_id: np.ndarray  # int64; pycocotools counts a match to annotation id 0 as no match

    def __len__(self) -> int:
        return len(self.image)


@dataclass
class FlatDT:
    """All detections of a set, in input order (the order breaks score ties)."""

    image: np.ndarray
    category: np.ndarray
    xywh: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    @property
    def area(self) -> np.ndarray:
        """Detection area as pycocotools' ``loadRes`` computes it: ``w * h``."""
        return self.xywh[:, 2] * self.xywh[:, 3]


@dataclass
class FlatSet:
    """A whole evaluation set: sorted image ids, sorted class ids, ground truth and detections."""

    image_ids: np.ndarray
    class_ids: np.ndarray
    gt: FlatGT
    dt: FlatDT
    class_names: dict = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)


def _arr(x, dtype, n: int, what: str, default=None) -> np.ndarray:
    if x is None:
        return np.full(n, default, dtype=dtype)
    a = np.asarray(x).reshape(-1)
    if len(a) != n:
        raise BadInput(f"{what}: expected {n} values, got {len(a)}")
    return a.astype(dtype)


def _boxes(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise BadInput(f"{what}: boxes must have shape (N, 4), got {a.shape}")
    if not np.isfinite(a).all():
        raise BadInput(f"{what}: boxes contain NaN or infinity")
    return a


def _class_index(classes: np.ndarray, class_ids: np.ndarray, what: str) -> np.ndarray:
    if len(classes) == 0:
        return np.zeros(0, np.int64)
    if len(class_ids) == 0:
        bad = np.ones(len(classes), bool)
        idx = np.zeros(len(classes), np.int64)
    else:
        idx = np.clip(np.searchsorted(class_ids, classes), 0, len(class_ids) - 1)
        bad = class_ids[idx] != classes
    if np.any(bad):
        unknown = sorted({str(c) for c in np.asarray(classes)[bad].tolist()})
        raise BadInput(f"{what}: class ids not among the evaluated classes: {', '.join(unknown[:10])}")
    return idx.astype(np.int64)


def flat_from_lists(
    gt_boxes: Sequence,
    gt_classes: Sequence,
    dt_boxes: Sequence,
    dt_scores: Sequence,
    dt_classes: Sequence,
    class_ids: Sequence[int],
    *,
    gt_crowd: Sequence | None = None,
    gt_difficult: Sequence | None = None,
    gt_areas: Sequence | None = None,
) -> FlatSet:
    """Build a :class:`FlatSet` from per-image lists of ``xyxy`` arrays (image ``i`` gets id ``i``).

    Raises :class:`BadInput` on ragged lists, bad shapes, non-finite values or class ids outside
    ``class_ids``.
    """
    n_img = len(gt_boxes)
    lists = {"gt_classes": gt_classes, "dt_boxes": dt_boxes, "dt_scores": dt_scores, "dt_classes": dt_classes}
    for name, lst in lists.items():
        if len(lst) != n_img:
            raise BadInput(f"{name}: {len(lst)} images but gt_boxes has {n_img}")
    cids = np.asarray(sorted({int(c) for c in class_ids}), dtype=np.int64)

    def cat(parts, width=None):
        if not parts:
            return np.zeros((0, width)) if width else np.zeros(0)
        return np.concatenate(parts)

    gb, gc, gcr, gdf, gar, gim = [], [], [], [], [], []
    db, ds, dc, dim = [], [], [], []
    for i in range(n_img):
        b = _boxes(gt_boxes[i], f"gt_boxes[{i}]")
        n = len(b)
        gb.append(b)
        gc.append(_arr(gt_classes[i], np.int64, n, f"gt_classes[{i}]"))
        gcr.append(_arr(None if gt_crowd is None else gt_crowd[i], bool, n, f"gt_crowd[{i}]", False))
        gdf.append(_arr(None if gt_difficult is None else gt_difficult[i], bool, n, f"gt_difficult[{i}]", False))
        area = None if gt_areas is None else gt_areas[i]
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        gar.append(w * h if area is None else _arr(area, np.float64, n, f"gt_areas[{i}]"))
        gim.append(np.full(n, i, np.int64))
        d = _boxes(dt_boxes[i], f"dt_boxes[{i}]")
        m = len(d)
        s = _arr(dt_scores[i], np.float64, m, f"dt_scores[{i}]")
        if not np.isfinite(s).all():
            raise BadInput(f"dt_scores[{i}]: scores contain NaN or infinity")
        db.append(d)
        ds.append(s)
        dc.append(_arr(dt_classes[i], np.int64, m, f"dt_classes[{i}]"))
        dim.append(np.full(m, i, np.int64))

    gxyxy = cat(gb, 4).reshape(-1, 4)
    dxyxy = cat(db, 4).reshape(-1, 4)
    g_cls = cat(gc).astype(np.int64)
    d_cls = cat(dc).astype(np.int64)
    n_gt = len(gxyxy)
    gt = FlatGT(
        image=cat(gim).astype(np.int64),
        category=_class_index(g_cls, cids, "gt_classes"),
        xywh=_to_xywh(gxyxy),
        area=cat(gar).astype(np.float64),
        crowd=cat(gcr).astype(bool),
        difficult=cat(gdf).astype(bool),
        ann_id=np.arange(1, n_gt + 1, dtype=np.int64),
    )
    dt = FlatDT(
        image=cat(dim).astype(np.int64),
        category=_class_index(d_cls, cids, "dt_classes"),
        xywh=_to_xywh(dxyxy),
        score=cat(ds).astype(np.float64),
    )
    return FlatSet(image_ids=np.arange(n_img, dtype=np.int64), class_ids=cids, gt=gt, dt=dt)


def _to_xywh(xyxy: np.ndarray) -> np.ndarray:
    out = xyxy.astype(np.float64, copy=True)
    out[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    return out


def flat_from_images(gt: Sequence[ImageGT], dt: Sequence[ImageDT], class_ids: Sequence[int]) -> FlatSet:
    """Build a :class:`FlatSet` from :class:`ImageGT` / :class:`ImageDT` lists (same length)."""
    if len(gt) != len(dt):
        raise BadInput(f"{len(gt)} ground-truth images but {len(dt)} detection images")
    return flat_from_lists(
        [g.boxes for g in gt],
        [g.classes for g in gt],
        [d.boxes for d in dt],
        [d.scores for d in dt],
        [d.classes for d in dt],
        class_ids,
        gt_crowd=[g.iscrowd for g in gt],
        gt_difficult=[g.difficult for g in gt],
        gt_areas=[g.areas for g in gt],
    )
