"""Per-box evaluation labels at one confidence and one (or several) IoU thresholds.

The codes are YMIR's ``ConfusionMatrixType`` values so labels round-trip with YMIR tools:

* ground truth: ``MTP`` (matched by a prediction), ``FN`` (missed), ``IGNORED`` (crowd/difficult);
* predictions: ``TP`` (matched), ``FP`` (at or above the confidence, unmatched), ``IGNORED``
  (below the confidence, or on an ignored ground-truth box).

Matching is COCO's greedy rule per (image, class) among the predictions at or above the
confidence: highest score first, each takes the free ground-truth box of its class with the
highest IoU >= threshold (boxes not ignored first). Ignored boxes may take any number of
predictions. Each matched pair is linked both ways (``gt_match`` / ``dt_match``, -1 if none),
with indices local to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detkit.evaluation.data import FlatSet, flat_from_lists
from detkit.evaluation.matching import match_flat

__all__ = ["NOT_SET", "TP", "FP", "FN", "MTP", "IGNORED", "ImageLabels", "label_flat", "label_boxes", "label_boxes_multi"]

NOT_SET, TP, FP, FN, MTP, IGNORED = 0, 1, 2, 3, 11, 12
LABEL_NAMES = {NOT_SET: "NOT_SET", TP: "TP", FP: "FP", FN: "FN", MTP: "MTP", IGNORED: "IGNORED"}


@dataclass
class ImageLabels:
    """Labels of one image: codes and matched partner indices (-1 when unmatched)."""

    gt_labels: np.ndarray
    dt_labels: np.ndarray
    gt_match: np.ndarray
    dt_match: np.ndarray


def label_flat(data: FlatSet, iou_thrs: Sequence[float], conf_thr: float = 0.0):
    """Label every box of a :class:`FlatSet` at each IoU threshold.

    Returns a list (one per threshold) of ``(gt_labels, dt_labels, gt_match, dt_match)`` flat
    arrays indexed like ``data.gt`` / ``data.dt`` (matches are flat indices too).
    """
    gt, dt = data.gt, data.dt
    ignored = gt.crowd | gt.difficult
    thrs = np.atleast_1d(np.asarray(iou_thrs, dtype=np.float64))
    order, _, m = match_flat(data, thrs, min_score=conf_thr, ignored=ignored, reusable=ignored)
    out = []
    for t in range(len(thrs)):
        sel = m.config == t
        d_flat, g_flat = order[m.dt[sel]], m.gt[sel]
        dt_match = np.full(len(dt), -1, dtype=np.int64)
        dt_match[d_flat] = g_flat
        gt_match = np.full(len(gt), -1, dtype=np.int64)
        # a reusable box may hold several predictions: keep the best-scored one (written last)
        gt_match[g_flat[::-1]] = d_flat[::-1]
        dt_labels = np.full(len(dt), IGNORED, dtype=np.int8)
        considered = dt.score >= conf_thr
        dt_labels[considered] = FP
        dt_labels[dt_match >= 0] = np.where(ignored[dt_match[dt_match >= 0]], IGNORED, TP)
        gt_labels = np.where(ignored, IGNORED, np.where(gt_match >= 0, MTP, FN)).astype(np.int8)
        out.append((gt_labels, dt_labels, gt_match, dt_match))
    return out


def _split(data: FlatSet, flat) -> list[ImageLabels]:
    n_img = data.num_images
    g_cnt = np.bincount(data.gt.image, minlength=n_img)
    d_cnt = np.bincount(data.dt.image, minlength=n_img)
    g_off = np.concatenate(([0], np.cumsum(g_cnt)))
    d_off = np.concatenate(([0], np.cumsum(d_cnt)))
    gl, dl, gm, dm = flat
    # local indices: flat index minus the partner image's offset (inputs are image-ordered)
    gm_local = np.where(gm >= 0, gm - d_off[data.gt.image], -1)
    dm_local = np.where(dm >= 0, dm - g_off[data.dt.image], -1)
    return [
        ImageLabels(
            gt_labels=gl[g_off[i] : g_off[i + 1]],
            dt_labels=dl[d_off[i] : d_off[i + 1]],
            gt_match=gm_local[g_off[i] : g_off[i + 1]],
            dt_match=dm_local[d_off[i] : d_off[i + 1]],
        )
        for i in range(n_img)
    ]


def label_boxes_multi(
    gt_boxes: Sequence,
    gt_classes: Sequence,
    dt_boxes: Sequence,
    dt_scores: Sequence,
    dt_classes: Sequence,
    *,
    iou_thrs: Sequence[float] = (0.5,),
    conf_thr: float = 0.0,
    gt_ignore: Sequence | None = None,
) -> dict[float, list[ImageLabels]]:
    """Label per-image boxes (``xyxy`` arrays, one list entry per image) at several IoUs.

    Returns ``{iou: [ImageLabels per image]}``; each threshold is an independent labelling.
    ``gt_ignore`` marks ground truth to ignore (crowd / difficult).
    """
    parts = [np.asarray(a).reshape(-1) for a in list(gt_classes) + list(dt_classes)]
    classes = np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)
    data = flat_from_lists(
        gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, classes.tolist(), gt_difficult=gt_ignore
    )
    thrs = [float(t) for t in iou_thrs]
    flats = label_flat(data, thrs, conf_thr)
    return {t: _split(data, f) for t, f in zip(thrs, flats, strict=True)}


def label_boxes(
    gt_boxes: Sequence,
    gt_classes: Sequence,
    dt_boxes: Sequence,
    dt_scores: Sequence,
    dt_classes: Sequence,
    *,
    iou_thr: float = 0.5,
    conf_thr: float = 0.0,
    gt_ignore: Sequence | None = None,
) -> list[ImageLabels]:
    """Label per-image boxes at one IoU threshold; see :func:`label_boxes_multi`."""
    return label_boxes_multi(
        gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes,
        iou_thrs=(iou_thr,), conf_thr=conf_thr, gt_ignore=gt_ignore,
    )[float(iou_thr)]
