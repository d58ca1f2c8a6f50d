"""ymir-convert: every command with --json; user errors exit 2 with the message."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from converters.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "model-package.md"


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_package_eval_bench_verify_json(tiny_onnx, cal_zip, val_zip, tmp_path):
    r = _run("package", tiny_onnx, tmp_path / "pkg", "--target", "openvino-int8", "--calibration", cal_zip,
             "--validation", val_zip, "--zip", tmp_path / "pkg.zip", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["status"] == "accepted" and data["precision"] == "int8" and data["backend"] == "openvino"
    assert Path(data["archive"]).is_file()
    r = _run("verify", tmp_path / "pkg.zip", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["files"]["model.xml"]
    r = _run("eval", tmp_path / "pkg.zip", "--data", val_zip, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mAP50"] == data["accuracy"]["mAP50"]
    r = _run("bench", tmp_path / "pkg", "--runs", "5", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["latency_ms_p50"] > 0


def test_quantize_and_openvino_json(tiny_onnx, cal_zip, tmp_path):
    r = _run("quantize", tiny_onnx, tmp_path / "q.onnx", "--calibration", cal_zip, "--max-images", "8", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["sha256"]) == 64
    r = _run("openvino", tiny_onnx, tmp_path / "ov", "--precision", "fp16", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["output"].endswith("model.xml")
    r = _run("targets", "--json")
    assert set(json.loads(r.stdout)["backends"]) == {"onnxruntime", "openvino", "tensorrt"}


def test_user_errors_exit_2_with_message(tmp_path, cal_zip):
    bogus = tmp_path / "m.onnx"
    bogus.write_text("not a model")
    r = _run("quantize", bogus, tmp_path / "q.onnx", "--calibration", cal_zip)
    assert r.exit_code == 2 and "m.onnx: not an ONNX model" in r.stderr
    r = _run("package", bogus, tmp_path / "p", "--target", "nope")
    assert r.exit_code == 2 and "unknown conversion target 'nope'" in r.stderr


def test_rejected_conversion_exits_1(tiny_onnx, cal_zip, val_zip, tmp_path):
    r = _run("package", tiny_onnx, tmp_path / "p", "--target", "onnx-fp32", "--validation", val_zip,
             "--max-drop", "-1")  # a limit no model can meet: must gain a point
    assert r.exit_code == 1 and "rejected" in r.stdout and "over the -1.00 point limit" in r.stdout


def test_every_command_is_documented():
    text = DOC.read_text()
    for name in main.commands:
        assert re.search(rf"ymir-convert {name}\b", text), f"ymir-convert {name} is not in {DOC.name}"
