"""detkit.runtime: load a model or package, detect in original pixels, raw run, info, errors."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "converters"))
import tinydet  # noqa: E402
from helpers import conv_onnx  # noqa: E402

from detkit.boxes import iou_matrix  # noqa: E402
from detkit.errors import BadInput, BadModel, Unavailable  # noqa: E402
from detkit.manifest import ModelSpec  # noqa: E402
from detkit.package import write_package  # noqa: E402
from detkit.runtime import BACKENDS, available_backends, load  # noqa: E402
from detkit.synth import CLASSES, scenes  # noqa: E402


@pytest.fixture(scope="module")
def model(request, tmp_path_factory) -> Path:
    return tinydet.for_session(request, tmp_path_factory)


@pytest.fixture(scope="module")
def det(model):
    d = load(model)
    yield d
    d.close()


@pytest.fixture(scope="module")
def data():
    return list(scenes(8, seed=99))


def test_available_backends_table():
    table = available_backends()
    assert set(table) == set(BACKENDS) == {"onnxruntime", "openvino", "tensorrt"}
    for key, (ok, reason) in table.items():
        assert isinstance(ok, bool) and reason
        if not ok:
            assert "pip install 'ymir-edge[" in reason, key
    assert table["onnxruntime"][0]


def test_detect_finds_objects_in_original_pixels(det, data):
    images = [img for img, _ in data]
    results = det.detect(images, conf=0.3)
    assert len(results) == len(images)
    hits = total = 0
    for (img, ann), res in zip(data, results, strict=True):
        assert (res.width, res.height) == img.size
        assert res.boxes.dtype == np.float32 and res.boxes.shape == (len(res), 4)
        assert list(res.class_names) == [CLASSES[c] for c in res.class_ids]
        assert np.all(np.diff(res.scores) <= 0)
        gt = np.array([[b.x1, b.y1, b.x2, b.y2] for b in ann.boxes], np.float32)
        total += len(gt)
        if len(res):
            hits += int((iou_matrix(gt, res.boxes).max(axis=1) >= 0.5).sum())
    assert hits >= 0.5 * total, f"only {hits}/{total} ground-truth boxes found"


def test_image_kinds_give_the_same_result(det, data):
    img = data[0][0]
    buf = io.BytesIO()
    img.save(buf, "PNG")
    by_pil, by_array, by_bytes = (det.detect(x, conf=0.3)[0] for x in (img, np.asarray(img), buf.getvalue()))
    for other in (by_array, by_bytes):
        np.testing.assert_allclose(other.boxes, by_pil.boxes, atol=1e-4)
        np.testing.assert_array_equal(other.class_ids, by_pil.class_ids)
    js = by_pil.to_json()
    assert js["width"] == img.width and len(js["detections"]) == len(by_pil)
    if js["detections"]:
        assert set(js["detections"][0]) == {"box", "score", "class_id", "class_name"}


def test_batches_larger_than_batch_size(model, data):
    d = load(model, batch_size=3)
    images = [img for img, _ in data]
    one_by_one = [d.detect(img, conf=0.3)[0] for img in images]
    batched = d.detect(images, conf=0.3)
    for a, b in zip(one_by_one, batched, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def test_info_and_oip_metadata(det, model):
    info = det.info
    assert info["backend"] == "onnxruntime" and info["precision"] == "fp32" and info["device"]
    assert info["input_shape"] == [-1, 3, 128, 128] and info["classes"] == list(CLASSES)
    assert len(info["sha256"]) == 64
    assert det.inputs == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, 128, 128]}]
    assert {o["name"]: o["shape"] for o in det.outputs} == {"heatmap": [-1, 3, 32, 32], "distances": [-1, 4, 32, 32]}


def test_run_raw_tensors(det):
    out = det.run({"images": np.zeros((2, 3, 128, 128), np.float32)})
    assert out["heatmap"].shape == (2, 3, 32, 32) and out["distances"].shape == (2, 4, 32, 32)
    with pytest.raises(BadInput, match=r"missing \['images'\]"):
        det.run({"input": np.zeros((1, 3, 128, 128), np.float32)})
    with pytest.raises(BadInput, match="does not fit"):
        det.run({"images": np.zeros((1, 3, 64, 64), np.float32)})


def test_bad_detect_arguments(det):
    with pytest.raises(BadInput, match="image 0: not a readable image"):
        det.detect([b"not an image"])
    with pytest.raises(BadInput, match="HxWx3"):
        det.detect(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(BadInput, match="conf"):
        det.detect(Image.new("RGB", (8, 8)), conf=2.0)


def test_model_without_spec_runs_raw_but_not_detect(tmp_path):
    plain = conv_onnx(tmp_path / "plain.onnx", {"heatmap": 2, "distances": 4})
    d = load(plain)
    assert d.spec is None and d.info["has_spec"] is False
    assert d.run({"images": np.zeros((1, 3, 32, 32), np.float32)})["heatmap"].shape == (1, 2, 8, 8)
    with pytest.raises(BadModel, match="plain.onnx: the model carries no 'ymir.spec' metadata"):
        d.detect(Image.new("RGB", (32, 32)))


def test_bad_model_files_are_named(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage")
    with pytest.raises(BadModel, match="junk.onnx: onnxruntime cannot load it"):
        load(junk)
    with pytest.raises(BadModel, match="notes.txt: unknown model file type"):
        (tmp_path / "notes.txt").write_text("x")
        load(tmp_path / "notes.txt")
    with pytest.raises(BadModel, match="nowhere.onnx: no such model file"):
        load(tmp_path / "nowhere.onnx")
    spec = ModelSpec(class_names=["a"], input_size=32)
    wrong = conv_onnx(tmp_path / "cls.onnx", {"logits": 1}, spec=spec)
    with pytest.raises(BadModel, match=r"cls.onnx: not a detector of this spec.*'heatmap'"):
        load(wrong)


def test_unknown_backend_and_settings(model):
    with pytest.raises(BadInput, match="unknown runtime backend 'tflite'"):
        load(model, backend="tflite")
    with pytest.raises(BadInput, match=r"unknown settings \['thread'\]"):
        load(model, thread=2)
    with pytest.raises(BadModel, match="backend onnxruntime opens .onnx files"):
        xml = model.with_suffix(".xml")
        xml.write_text("<net/>")
        try:
            load(xml, backend="onnxruntime")
        finally:
            xml.unlink()


@pytest.mark.skipif(available_backends()["tensorrt"][0], reason="TensorRT is installed here")
def test_tensorrt_unavailable_is_clear(model, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 16)
    for path in (model, engine):
        with pytest.raises(Unavailable, match=r"backend tensorrt unavailable: pip install 'ymir-edge\[tensorrt\]'"):
            load(path, backend="tensorrt")


def test_load_package_folder_and_reject_tampering(model, tmp_path, data):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "weights").mkdir()
    (pkg / "weights" / "det.onnx").write_bytes(model.read_bytes())
    spec = tinydet.spec()
    write_package(pkg, name="shapes", version="2", spec=spec, model="weights/det.onnx", precision="fp32")
    d = load(pkg)
    assert d.info["name"] == "shapes" and d.info["version"] == "2"
    assert len(d.detect(data[0][0], conf=0.3)) == 1
    d.close()
    with open(pkg / "weights" / "det.onnx", "ab") as f:
        f.write(b"\x00")
    with pytest.raises(BadModel, match="sha256 mismatch for 'weights/det.onnx'"):
        load(pkg)


@pytest.mark.parametrize("backend", [b for b in ("onnxruntime", "openvino") if available_backends()[b][0]])
def test_concurrent_detect_is_safe(model, data, backend):
    """Servers call detect() from several threads; results must equal the sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    d = load(model, backend=backend)
    images = [img for img, _ in data]
    expected = [r.boxes for r in d.detect(images, conf=0.3)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda img: d.detect(img, conf=0.3)[0].boxes, images * 3))
    for i, boxes in enumerate(got):
        np.testing.assert_allclose(boxes, expected[i % len(images)], atol=1e-3)


@pytest.mark.skipif(not available_backends()["openvino"][0], reason="OpenVINO not installed")
def test_openvino_reads_the_onnx_directly(model, det, data):
    """OpenVINO opens the contract ONNX too, spec from its metadata, same detections as onnxruntime."""
    ov = load(model, backend="openvino")
    assert ov.backend == "openvino" and ov.info["precision"] == "fp32" and ov.class_names == list(CLASSES)
    a, b = det.detect(data[0][0], conf=0.3)[0], ov.detect(data[0][0], conf=0.3)[0]
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
