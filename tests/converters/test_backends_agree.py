"""The same images through every available backend and precision give the same boxes.

Reference: onnxruntime fp32 on the source ONNX. fp32/fp16 backends must agree to a pixel; int8
ones within quantization tolerance (same objects, same classes, IoU >= 0.7, similar scores).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.data import load_images
from converters.openvino import to_openvino
from converters.quantize import quantize_onnx
from detkit.boxes import iou_matrix
from detkit.runtime import available_backends, load

CONF = 0.3
STRONG = 0.5  # reference detections this confident must be found again


@pytest.fixture(scope="module")
def images(val_zip):
    return [s.image() for s in load_images(val_zip, limit=16)]


@pytest.fixture(scope="module")
def variants(tiny_onnx, cal_zip, tmp_path_factory):
    """(name, model path, backend, loose, backend config) for every variant this machine can run.

    An fp16 IR is run twice: computing in f32 (fp16 weights only: must agree to a pixel), and with
    OpenVINO's default inference precision, which is bf16 on CPUs with AMX / AVX512-BF16 (8 mantissa bits:
    held to the int8 tolerance, as a reduced-precision variant)."""
    out = tmp_path_factory.mktemp("variants")
    rows = [("onnxruntime-fp32", tiny_onnx, "onnxruntime", False, {})]
    rows.append(("onnxruntime-int8", quantize_onnx(tiny_onnx, out / "int8.onnx", cal_zip), "onnxruntime", True, {}))
    if available_backends()["openvino"][0]:
        for precision in ("fp32", "fp16", "int8"):
            xml = to_openvino(tiny_onnx, out / f"ov-{precision}", precision, cal_zip)
            if precision == "fp16":
                rows.append(("openvino-f32-compute-fp16", xml, "openvino", False, {"precision_hint": "f32"}))
            rows.append((f"openvino-{precision}", xml, "openvino", precision != "fp32", {}))
    return rows


def _match(ref, other, min_iou: float):
    """For each strong reference box: best IoU with a same-class box of ``other``, and its score."""
    strong = ref.scores >= STRONG
    if not strong.any():
        return np.zeros(0), np.zeros(0), np.zeros(0)
    iou = iou_matrix(ref.boxes[strong], other.boxes) if len(other) else np.zeros((strong.sum(), 0))
    same = ref.class_ids[strong][:, None] == other.class_ids[None, :]
    iou = np.where(same, iou, 0.0)
    best = iou.argmax(axis=1) if iou.shape[1] else np.zeros(strong.sum(), int)
    best_iou = iou[np.arange(len(best)), best] if iou.shape[1] else np.zeros(strong.sum())
    other_scores = other.scores[best] if len(other) else np.zeros(strong.sum())
    return best_iou, ref.scores[strong], other_scores


def test_every_backend_finds_the_same_boxes(variants, images):
    ref = load(variants[0][1], backend="onnxruntime").detect(images, conf=CONF)
    assert sum(len(r) for r in ref) >= 20, "the tiny detector should find objects in these scenes"
    assert len(variants) >= 2
    for name, path, backend, loose, config in variants[1:]:
        det = load(path, backend=backend, **config)
        got = det.detect(images, conf=CONF)
        assert det.info["precision"] == name.rsplit("-", 1)[1], name
        ious, ref_scores, scores = (np.concatenate(x) for x in zip(*(_match(r, g, 0.7) for r, g in zip(ref, got, strict=True)), strict=True))
        assert len(ious) >= 10
        if loose:  # int8: same objects, IoU >= 0.7, scores within 0.15, for at least 90% of strong boxes
            ok = (ious >= 0.7) & (np.abs(ref_scores - scores) <= 0.15)
            assert ok.mean() >= 0.9, f"{name}: only {ok.mean():.0%} of strong boxes agree"
        else:  # fp32/fp16: the same computation up to float rounding
            assert np.all(ious >= 0.97), f"{name}: min IoU {ious.min():.3f}"
            assert np.max(np.abs(ref_scores - scores)) < 0.01, name
        det.close()


def test_boxes_are_in_original_pixels(variants, images):
    det = load(variants[0][1])
    for img, dets in zip(images, det.detect(images, conf=CONF), strict=True):
        assert (dets.width, dets.height) == img.size
        if len(dets):
            assert dets.boxes[:, [0, 2]].max() <= img.width and dets.boxes[:, [1, 3]].max() <= img.height
            assert dets.boxes[:, 2:].max() > 128  # not left in the 128 px model-input space
