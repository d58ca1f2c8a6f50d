"""convert -> validate -> package records the figures and judges accepted/rejected."""

from __future__ import annotations

import json

import pytest
from helpers import conv_onnx

from converters.package import convert
from converters.quantize import quantize_onnx
from detkit.manifest import METADATA_KEY, ModelSpec
from detkit.package import pack, read_manifest, unpack, verify
from detkit.runtime import load


@pytest.fixture(scope="module")
def int8_package(tiny_onnx, cal_zip, val_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "int8"
    return out, convert("onnx-int8", tiny_onnx, out, calibration=cal_zip, validation=val_zip, name="shapes",
                        version="3", runs=10)


def test_package_records_accuracy_and_speed(int8_package, tiny_onnx):
    out, manifest = int8_package
    data = json.loads((out / "manifest.json").read_text())
    assert data["schema"] == 1 and data["name"] == "shapes" and data["version"] == "3"
    assert data["backend"] == "onnxruntime" and data["precision"] == "int8" and data["task"] == "detection"
    assert data["class_names"] == ["circle", "square", "triangle"] == data["spec"]["class_names"]
    acc, speed = data["accuracy"], data["speed"]
    assert acc["mAP50"] > 30 and acc["source"]["mAP50"] > 30, acc
    assert acc["delta_mAP50"] == pytest.approx(acc["mAP50"] - acc["source"]["mAP50"], abs=1e-2)
    assert acc["delta_mAP50_95"] == pytest.approx(acc["mAP50_95"] - acc["source"]["mAP50_95"], abs=1e-2)
    assert acc["images"] == 60 and acc["max_drop"] == 2.0
    assert speed["latency_ms_p50"] > 0 and speed["latency_ms_p95"] >= speed["latency_ms_p50"]
    assert speed["images_per_s"] > 0 and speed["source"]["latency_ms_p50"] > 0
    assert data["status"] == "accepted", data["reason"]
    assert set(data["files"]) == {"model.onnx"} and data["created"].endswith("Z")
    assert data["source_sha256"] == manifest.source_sha256 and len(data["source_sha256"]) == 64


def test_rejected_when_accuracy_drops_over_the_limit(tmp_path, tiny_onnx, cal_zip, val_zip):
    # A wildly miscalibrated int8 model: calibrate on uniform grey images, so activations clip.
    grey = tmp_path / "grey"
    grey.mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (64, 64), (120 + i, 120, 120)).save(grey / f"g{i}.png")
    manifest = convert("onnx-int8", tiny_onnx, tmp_path / "bad", calibration=grey, validation=val_zip, runs=5)
    assert manifest.status == "rejected", manifest.accuracy
    assert "over the 2.00 point limit" in manifest.reason
    assert manifest.accuracy["delta_mAP50"] < -2.0
    assert read_manifest(tmp_path / "bad").status == "rejected"


def test_package_zip_roundtrip_and_load(int8_package, tmp_path):
    out, manifest = int8_package
    archive = pack(out, tmp_path / "pkg.zip")
    assert verify(archive).name == "shapes"
    det = load(archive)
    assert det.info["precision"] == "int8" and det.info["name"] == "shapes" and det.info["version"] == "3"
    assert det.info["sha256"] == manifest.files["model.onnx"]
    det.close()
    unpacked = unpack(archive, tmp_path / "unpacked")
    assert unpacked.files == manifest.files


def test_unvalidated_without_validation_set(tiny_onnx, tmp_path):
    manifest = convert("openvino-fp16", tiny_onnx, tmp_path / "ov")
    assert manifest.status == "unvalidated" and manifest.accuracy == {}
    assert set(manifest.files) == {"model.xml", "model.bin", "model.spec.json"}
    det = load(tmp_path / "ov")
    assert det.backend == "openvino" and det.info["precision"] == "fp16"


def test_quantized_model_keeps_spec_and_float_head(tiny_onnx, cal_zip, tmp_path, monkeypatch):
    import onnx

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = quantize_onnx(tiny_onnx, tmp_path / "q.onnx", cal_zip)
    assert list(cwd.iterdir()) == []  # no temp files left in the working directory
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert ModelSpec.from_json(meta[METADATA_KEY]).class_names == ["circle", "square", "triangle"]
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    producers = {o: n for n in model.graph.node for o in n.output}
    for name in ("heatmap", "distances"):  # head outputs come straight from float ops, not a DequantizeLinear
        assert producers[name].op_type != "DequantizeLinear", name


def test_wrong_detector_spec_refused_before_work(tmp_path, cal_zip):
    spec = ModelSpec(class_names=["a"], input_size=64)
    model = conv_onnx(tmp_path / "m.onnx", {"heatmap": 1, "distances": 4}, size=32, spec=spec)
    with pytest.raises(Exception, match=r"m.onnx: input 'images' has shape \[-1, 3, 32, 32\], spec wants"):
        convert("onnx-int8", model, tmp_path / "pkg", calibration=cal_zip)
    assert not (tmp_path / "pkg").exists()
