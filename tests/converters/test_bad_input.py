"""Bad inputs to conversions are refused with a clear error naming the file."""

from __future__ import annotations

import shutil

import pytest
from helpers import conv_onnx
from PIL import Image

from converters.data import load_images
from converters.openvino import to_openvino
from converters.package import convert
from converters.quantize import quantize_onnx
from detkit.errors import BadInput, BadModel, Conflict, UnknownClasses
from detkit.io.voc import to_voc
from detkit.manifest import ModelSpec
from detkit.package import verify
from detkit.synth import scenes


def test_non_onnx_file_names_the_file(tmp_path, cal_zip):
    bogus = tmp_path / "notes.onnx"
    bogus.write_bytes(b"definitely not protobuf \x00\xff" * 10)
    for fn in (lambda: quantize_onnx(bogus, tmp_path / "o.onnx", cal_zip), lambda: to_openvino(bogus, tmp_path / "ov")):
        with pytest.raises(BadModel, match="notes.onnx: not an ONNX model"):
            fn()


def test_onnx_whose_outputs_do_not_match_a_detector(tmp_path, cal_zip):
    spec = ModelSpec(class_names=["a", "b"], input_size=32)
    wrong = conv_onnx(tmp_path / "classifier.onnx", {"logits": 2}, spec=spec)
    with pytest.raises(BadModel, match=r"classifier.onnx: not a detector.*'heatmap'"):
        quantize_onnx(wrong, tmp_path / "o.onnx", cal_zip)
    bad_channels = conv_onnx(tmp_path / "five.onnx", {"heatmap": 5, "distances": 4}, spec=spec)
    with pytest.raises(BadModel, match=r"five.onnx: heatmap output 'heatmap' has shape \[-1, 5, 8, 8\]"):
        to_openvino(bad_channels, tmp_path / "ov")


def test_onnx_without_spec_is_refused_for_conversion(tmp_path, cal_zip):
    plain = conv_onnx(tmp_path / "plain.onnx", {"heatmap": 2, "distances": 4})
    with pytest.raises(BadModel, match="plain.onnx: ONNX has no 'ymir.spec' metadata"):
        quantize_onnx(plain, tmp_path / "o.onnx", cal_zip)


def test_empty_calibration_set(tmp_path, tiny_onnx):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(BadInput, match="empty: no images found"):
        quantize_onnx(tiny_onnx, tmp_path / "o.onnx", empty)
    with pytest.raises(BadInput, match="missing: no such folder or zip"):
        convert("onnx-int8", tiny_onnx, tmp_path / "pkg", calibration=tmp_path / "missing")


def test_calibration_set_of_the_wrong_classes(tmp_path, tiny_onnx):
    folder = tmp_path / "cars"
    folder.mkdir()
    for img, ann in scenes(3, seed=1):
        img.save(folder / ann.filename)
        for b in ann.boxes:
            b.name = "car" if b.name == "circle" else "truck"
        (folder / ann.filename).with_suffix(".xml").write_bytes(to_voc(ann))
    with pytest.raises(UnknownClasses, match=r"unknown classes in .*cars.*: car, truck"):
        quantize_onnx(tiny_onnx, tmp_path / "o.onnx", folder)
    with pytest.raises(UnknownClasses, match="car"):
        convert("onnx-fp32", tiny_onnx, tmp_path / "pkg", validation=folder)


def test_validation_set_needs_annotations(tmp_path, tiny_onnx):
    folder = tmp_path / "raw"
    folder.mkdir()
    Image.new("RGB", (64, 48)).save(folder / "a.png")
    assert len(load_images(folder)) == 1
    with pytest.raises(BadInput, match="raw: no VOC annotations found"):
        convert("onnx-fp32", tiny_onnx, tmp_path / "pkg", validation=folder)


def test_corrupted_package_names_the_file(tmp_path, tiny_onnx):
    pkg = tmp_path / "pkg"
    convert("onnx-fp32", tiny_onnx, pkg)
    verify(pkg)
    with open(pkg / "model.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BadModel, match=r"sha256 mismatch for 'model.onnx'"):
        verify(pkg)


def test_output_folder_must_be_empty(tmp_path, tiny_onnx):
    out = tmp_path / "taken"
    out.mkdir()
    shutil.copyfile(tiny_onnx, out / "x.onnx")
    with pytest.raises(Conflict, match="taken: output folder exists"):
        convert("onnx-fp32", tiny_onnx, out)


def test_int8_target_without_calibration(tmp_path, tiny_onnx):
    with pytest.raises(BadInput, match="onnx-int8 needs calibration"):
        convert("onnx-int8", tiny_onnx, tmp_path / "pkg")
    with pytest.raises(BadInput, match="unknown conversion target 'onnx-int4'"):
        convert("onnx-int4", tiny_onnx, tmp_path / "pkg")
