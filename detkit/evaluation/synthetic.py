"""Seeded synthetic COCO sets for tests and benchmarks (no data files needed).

Detections are jittered copies of ground truth plus false alarms, with coarse scores so ties
happen, optional crowd regions, tiny and huge boxes, empty images, classes without ground truth
and classes without detections, and ``area`` fields that sometimes disagree with the box.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_coco"]


def synthetic_coco(
    n_images: int,
    n_classes: int,
    max_dets: int = 100,
    seed: int = 0,
    *,
    max_gt: int = 12,
    crowd_frac: float = 0.03,
    empty_frac: float = 0.05,
    score_decimals: int = 2,
    heavy_class_frac: float = 0.0,
) -> tuple[dict, list]:
    """Return ``(ground_truth_dict, results_list)`` in COCO JSON shapes.

    ``heavy_class_frac``: share of images where one class gets well over 100 detections (tests
    pycocotools' per-(image, class) cut at 100).
    """
    rng = np.random.default_rng(seed)
    img_ids = rng.choice(np.arange(1, 20 * n_images + 2), size=n_images, replace=False)
    cat_ids = np.sort(rng.choice(np.arange(1, 3 * n_classes + 2), size=n_classes, replace=False))
    # some classes never appear in the ground truth, some never in the detections
    n_missing = max(1, n_classes // 10) if n_classes >= 3 else 0
    no_gt = set(rng.choice(cat_ids, size=n_missing, replace=False).tolist())
    no_dt = set(rng.choice(cat_ids, size=n_missing, replace=False).tolist()) - no_gt
    gt_cats = np.array([c for c in cat_ids if c not in no_gt])
    dt_cats = np.array([c for c in cat_ids if c not in no_dt])
    images, anns, results = [], [], []
    ann_id = 1
    for img in img_ids.tolist():
        width, height = int(rng.integers(64, 1400)), int(rng.integers(64, 1400))
        images.append({"id": img, "width": width, "height": height, "file_name": f"{img}.jpg"})
        if rng.random() < empty_frac:
            n_gt = 0
        else:
            n_gt = int(rng.integers(0, max_gt + 1))
        scale = rng.choice([4.0, 20.0, 60.0, 200.0, 600.0], size=n_gt)
        w = np.maximum(np.round(scale * rng.uniform(0.3, 1.5, n_gt), 1), 0.5)
        h = np.maximum(np.round(scale * rng.uniform(0.3, 1.5, n_gt), 1), 0.5)
        x = np.round(rng.uniform(0, width, n_gt), 1)
        y = np.round(rng.uniform(0, height, n_gt), 1)
        cls = rng.choice(gt_cats, size=n_gt) if len(gt_cats) else np.zeros(0, int)
        crowd = rng.random(n_gt) < crowd_frac
        for i in range(n_gt):
            area = float(w[i] * h[i])
            if rng.random() < 0.1:  # annotation area (e.g. a mask's) differs from the box's
                area *= float(rng.uniform(0.3, 1.0))
            anns.append({
                "id": ann_id, "image_id": img, "category_id": int(cls[i]),
                "bbox": [float(x[i]), float(y[i]), float(w[i]), float(h[i])],
                "area": area, "iscrowd": int(crowd[i]),
            })
            ann_id += 1
        n_dt = int(rng.integers(0, max_dets + 1))
        # detections: jittered ground truth (several per box) then false alarms
        n_tp = min(n_dt, int(rng.integers(0, 3 * n_gt + 1))) if n_gt else 0
        src = rng.integers(0, max(n_gt, 1), n_tp)
        jit = rng.normal(0, 0.12, (n_tp, 4))
        bx = np.empty((n_dt, 4))
        dc = np.empty(n_dt, dtype=np.int64)
        if n_tp:
            bx[:n_tp, 0] = x[src] + jit[:, 0] * w[src]
            bx[:n_tp, 1] = y[src] + jit[:, 1] * h[src]
            bx[:n_tp, 2] = w[src] * np.exp(jit[:, 2])
            bx[:n_tp, 3] = h[src] * np.exp(jit[:, 3])
            flip = rng.random(n_tp) < 0.1  # wrong class now and then
            dc[:n_tp] = np.where(flip, rng.choice(dt_cats, n_tp), cls[src])
        n_fp = n_dt - n_tp
        fs = rng.choice([6.0, 30.0, 120.0, 500.0], size=n_fp)
        bx[n_tp:, 0] = rng.uniform(0, width, n_fp)
        bx[n_tp:, 1] = rng.uniform(0, height, n_fp)
        bx[n_tp:, 2] = fs * rng.uniform(0.3, 1.5, n_fp)
        bx[n_tp:, 3] = fs * rng.uniform(0.3, 1.5, n_fp)
        dc[n_tp:] = rng.choice(dt_cats, n_fp)
        if heavy_class_frac and rng.random() < heavy_class_frac and len(dt_cats):
            extra = int(rng.integers(101, 160))
            hb = np.column_stack([
                rng.uniform(0, width, extra), rng.uniform(0, height, extra),
                rng.uniform(5, 200, extra), rng.uniform(5, 200, extra),
            ])
            bx = np.vstack([bx, hb])
            dc = np.concatenate([dc, np.full(extra, dt_cats[0])])
        bx = np.round(bx, 2)
        bx[:, 2:] = np.maximum(bx[:, 2:], 0.01)
        sc = np.round(rng.uniform(0.0, 1.0, len(bx)), score_decimals)
        sc[: min(n_tp, len(sc))] = np.round(np.clip(sc[: min(n_tp, len(sc))] + 0.3, 0, 1), score_decimals)
        perm = rng.permutation(len(bx))
        for j in perm.tolist():
            if int(dc[j]) in no_dt:
                continue
            results.append({
                "image_id": img, "category_id": int(dc[j]),
                "bbox": [float(v) for v in bx[j]], "score": float(sc[j]),
            })
    cats = [{"id": int(c), "name": f"class{c}"} for c in cat_ids.tolist()]
    return {"images": images, "annotations": anns, "categories": cats}, results
