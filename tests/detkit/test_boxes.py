"""Box helpers: IoU against hand values, NMS against a plain reference loop."""

from __future__ import annotations

import numpy as np
import pytest

from detkit import boxes as B


def test_iou_matrix_hand_values():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=float)
    b = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [0, 0, 5, 10], [3, 3, 3, 3]], dtype=float)
    m = B.iou_matrix(a, b)
    assert m.shape == (2, 4)
    np.testing.assert_allclose(m[0], [1.0, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(m[1], [25 / 175, 25 / 175, 0.0, 0.0])
    assert B.iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)


def test_conversions_round_trip():
    xyxy = np.array([[1.0, 2.0, 4.0, 8.0]])
    np.testing.assert_array_equal(B.xyxy_to_xywh(xyxy), [[1, 2, 3, 6]])
    np.testing.assert_array_equal(B.xywh_to_xyxy(B.xyxy_to_xywh(xyxy)), xyxy)
    np.testing.assert_array_equal(B.box_area(xyxy), [18.0])
    with pytest.raises(ValueError):
        B.as_boxes(np.zeros((2, 3)))


def test_coco_pair_iou_crowd_uses_detection_area():
    d = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    g = np.array([[0, 0, 20, 20], [0, 0, 20, 20]], dtype=float)
    out = B.coco_pair_iou(d, g, np.array([False, True]))
    np.testing.assert_allclose(out, [100 / 400, 1.0])


def reference_nms(boxes, scores, thr, classes=None):
    """Textbook greedy NMS: walk boxes by score, keep one unless a kept box overlaps it > thr."""
    order = np.argsort(-scores, kind="stable")
    iou = B.iou_matrix(boxes, boxes)
    keep = []
    for i in order:
        if all(iou[i, j] <= thr or (classes is not None and classes[i] != classes[j]) for j in keep):
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def random_boxes(rng, n):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 40, (n, 2))
    return np.hstack([xy, xy + wh])


@pytest.mark.parametrize("seed", range(6))
def test_nms_matches_reference(seed):
    rng = np.random.default_rng(seed)
    b = random_boxes(rng, 150)
    s = np.round(rng.random(150), 1)  # ties
    c = rng.integers(0, 3, 150)
    for thr in (0.3, 0.5, 0.7):
        np.testing.assert_array_equal(B.nms(b, s, thr), reference_nms(b, s, thr))
        np.testing.assert_array_equal(B.batched_nms(b, s, c, thr), reference_nms(b, s, thr, c))


def test_nms_long_chain_and_loop_path(monkeypatch):
    # a chain of boxes each overlapping the next: the fixed-point needs many passes -> loop fallback
    x = np.arange(60, dtype=float) * 4
    b = np.column_stack([x, np.zeros(60), x + 10, np.full(60, 10.0)])
    s = np.linspace(1, 0.1, 60)
    want = reference_nms(b, s, 0.3)
    np.testing.assert_array_equal(B.nms(b, s, 0.3), want)
    monkeypatch.setattr(B, "_MATRIX_NMS_MAX", 0)  # force the per-kept-box loop
    np.testing.assert_array_equal(B.nms(b, s, 0.3), want)
    rng = np.random.default_rng(9)
    b2, s2, c2 = random_boxes(rng, 80), rng.random(80), rng.integers(0, 2, 80)
    np.testing.assert_array_equal(B.batched_nms(b2, s2, c2, 0.5), reference_nms(b2, s2, 0.5, c2))


def test_nms_empty_and_mismatch():
    assert len(B.nms(np.zeros((0, 4)), np.zeros(0), 0.5)) == 0
    with pytest.raises(ValueError):
        B.nms(np.zeros((2, 4)), np.zeros(3), 0.5)


def test_nms_hand_case_strictly_greater():
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=float)
    s = np.array([0.9, 0.8, 0.7, 0.6])
    # box 1 overlaps box 0 by exactly 0.5 (kept at 0.5); box 2 by 0.82 (dropped)
    assert B.nms(b, s, 0.5).tolist() == [0, 1, 3]
    assert B.nms(b, s, 0.49).tolist() == [0, 3]
    # per class: box 2 in another class survives
    assert B.batched_nms(b, s, np.array([0, 0, 1, 0]), 0.5).tolist() == [0, 1, 2, 3]
