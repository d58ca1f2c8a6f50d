"""Accuracy and speed of a model on a validation set, and the accept/reject rule for conversions.

Every conversion runs the source (onnxruntime fp32) and the result (its own backend) through
:func:`evaluate` and :func:`measure_speed`; :func:`judge` rejects a result whose mAP@0.5 drops by
more than ``max_drop`` points.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from converters.data import ImageSet
from detkit.runtime.base import Detector

log = logging.getLogger(__name__)

DEFAULT_MAX_DROP = 2.0  # mAP@0.5 points
EVAL_CONF = 0.01  # low threshold so AP integrates the whole precision/recall curve


def _evaluate_lists(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, num_classes: int) -> dict:
    """``detkit.evaluation.evaluate_detections`` (COCO-style mAP@0.5 and @.5:.95)."""
    try:
        from detkit.evaluation import evaluate_detections
    except ImportError:  # older trees: the flat COCO evaluator it wraps
        from detkit.evaluation.coco import evaluate_flat
        from detkit.evaluation.data import flat_from_lists

        flat = flat_from_lists(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, list(range(num_classes)))
        result = evaluate_flat(flat)
        return {"mAP50": result.map50, "mAP50_95": result.map50_95, "per_class": result.per_class_ap50}
    return evaluate_detections(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, num_classes)


def evaluate(detector: Detector, images: ImageSet, progress: Callable[[int], None] | None = None) -> dict:
    """mAP@0.5 and mAP@.5:.95 (in points, 0-100) of ``detector`` on an annotated image set."""
    names = detector.class_names
    gt_boxes, gt_classes = images.ground_truth(names)
    dt_boxes, dt_scores, dt_classes = [], [], []
    for sample in images:
        det = detector.detect([sample.image()], conf=EVAL_CONF, iou=0.6, max_det=100)[0]
        dt_boxes.append(det.boxes)
        dt_scores.append(det.scores)
        dt_classes.append(det.class_ids)
        if progress:
            progress(1)
    result = _evaluate_lists(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, len(names))
    per_class = result.get("per_class") or {}
    return {
        "mAP50": round(100.0 * float(result["mAP50"]), 3),
        "mAP50_95": round(100.0 * float(result["mAP50_95"]), 3),
        "images": len(images),
        "per_class": {str(k): _points(v) for k, v in per_class.items()},
    }


def _points(v) -> float | dict:
    if isinstance(v, dict):
        return {k: (round(100.0 * x, 3) if isinstance(x, float) else x) for k, x in v.items()}
    return round(100.0 * float(v), 3)


def measure_speed(detector: Detector, images: ImageSet, runs: int = 50, warmup: int = 5, batch: int = 8) -> dict:
    """Batch-1 model latency p50/p95 (ms), end-to-end ``detect`` p50 (ms) and images/s at ``batch``.

    Model latency times :meth:`Detector.run` on a prepared input (what differs between backends);
    end-to-end adds letterbox, decode and NMS (shared by all backends).
    """
    spec = detector.spec
    pil = [s.image() for s in images.take(max(batch, 1))]
    x1, _ = detector.preprocess(pil[:1])
    feed = {detector.session.inputs[0].name: x1}
    for _ in range(warmup):
        detector.run(feed)
    lat = []
    for _ in range(runs):
        t0 = time.perf_counter()
        detector.run(feed)
        lat.append((time.perf_counter() - t0) * 1000.0)
    e2e = []
    for i in range(max(5, runs // 5)):
        t0 = time.perf_counter()
        detector.detect(pil[i % len(pil)])
        e2e.append((time.perf_counter() - t0) * 1000.0)
    fixed = detector.session.inputs[0].shape[0]
    n = fixed if fixed > 0 else batch
    xb, _ = detector.preprocess([pil[i % len(pil)] for i in range(n)])
    feed_b = {detector.session.inputs[0].name: xb}
    detector.run(feed_b)
    reps = max(3, runs // n)
    t0 = time.perf_counter()
    for _ in range(reps):
        detector.run(feed_b)
    ips = n * reps / (time.perf_counter() - t0)
    return {
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 3),
        "e2e_ms_p50": round(float(np.percentile(e2e, 50)), 3),
        "images_per_s": round(float(ips), 2),
        "throughput_batch": n,
        "runs": runs,
        "input_size": spec.input_size if spec else None,
        "backend": detector.backend,
        "device": detector.session.device,
    }


def judge(source: dict, result: dict, max_drop: float = DEFAULT_MAX_DROP) -> tuple[str, str, dict]:
    """``(status, reason, deltas)``: rejected when mAP@0.5 drops by more than ``max_drop`` points."""
    deltas = {
        "delta_mAP50": round(result["mAP50"] - source["mAP50"], 3),
        "delta_mAP50_95": round(result["mAP50_95"] - source["mAP50_95"], 3),
    }
    drop = -deltas["delta_mAP50"]
    if drop > max_drop:
        reason = (f"mAP@0.5 dropped {drop:.2f} points ({source['mAP50']:.2f} -> {result['mAP50']:.2f}), "
                  f"over the {max_drop:.2f} point limit")
        return "rejected", reason, deltas
    return "accepted", f"mAP@0.5 {source['mAP50']:.2f} -> {result['mAP50']:.2f} (limit {max_drop:.2f} points)", deltas
