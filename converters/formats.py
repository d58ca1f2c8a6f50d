"""The table of conversion targets: one row per (format, precision), one build function each.

A build function takes the source ONNX path, an output folder and the calibration images (or
``None``) and writes the model file(s) into the folder; it returns the relative path a runtime
opens and the other files that belong to the package. Adding a target: write the function (in its
own module when it needs a new SDK), add a row, a line in ``docs/model-package.md`` and a test.

Targets ending in ``-u8`` take the letterboxed uint8 NHWC image and normalise it in the graph
(spec and package schema 2; :mod:`converters.graph_input`, :func:`converters.openvino.to_openvino`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.data import ImageSet
from converters.source import Progress
from detkit.errors import BadInput

BuildResult = tuple[str, list[str]]  # (model file, other files), relative to the output folder
BuildFn = Callable[[Path, Path, ImageSet | None, Progress | None], BuildResult]


@dataclass(frozen=True)
class Target:
    """A conversion target: which runtime backend serves it, at which precision."""

    key: str
    backend: str
    precision: str
    needs_calibration: bool
    description: str
    build: BuildFn
    uint8_input: bool = False  # the graph takes uint8 NHWC and normalises inside (spec schema 2)


def _onnx_fp32(src: Path, out: Path, calibration: ImageSet | None, progress: Progress | None) -> BuildResult:
    shutil.copyfile(src, out / "model.onnx")
    return "model.onnx", []


def _onnx_int8(src: Path, out: Path, calibration: ImageSet | None, progress: Progress | None) -> BuildResult:
    from converters.quantize import quantize_onnx

    quantize_onnx(src, out / "model.onnx", calibration, progress=progress)
    return "model.onnx", []


def _onnx_u8(precision: str) -> BuildFn:
    def build(src: Path, out: Path, calibration: ImageSet | None, progress: Progress | None) -> BuildResult:
        from converters.graph_input import uint8_input_onnx
        from converters.quantize import quantize_onnx
        from converters.source import read_source

        spec = read_source(src).spec
        with tempfile.TemporaryDirectory(prefix="ymir-u8-") as tmp:
            float_input = src
            if precision == "int8":  # quantized on the usual normalised inputs, then the uint8 input in front
                float_input = quantize_onnx(src, Path(tmp) / "int8.onnx", calibration, progress=progress)
            uint8_input_onnx(float_input, out / "model.onnx", spec)
        return "model.onnx", []

    return build


def _openvino(precision: str, uint8_input: bool = False) -> BuildFn:
    def build(src: Path, out: Path, calibration: ImageSet | None, progress: Progress | None) -> BuildResult:
        from converters.openvino import to_openvino

        xml = to_openvino(src, out, precision, calibration, progress=progress, uint8_input=uint8_input)
        return xml.name, [xml.with_suffix(".bin").name, "model.spec.json"]

    return build


def _tensorrt(precision: str) -> BuildFn:
    def build(src: Path, out: Path, calibration: ImageSet | None, progress: Progress | None) -> BuildResult:
        from converters.quantize import quantize_onnx
        from converters.tensorrt import to_tensorrt

        with tempfile.TemporaryDirectory(prefix="ymir-trt-") as tmp:
            onnx_in = src
            if precision == "int8":  # explicit quantization: QDQ ONNX first
                onnx_in = quantize_onnx(src, Path(tmp) / "qdq.onnx", calibration, progress=progress)
            engine = to_tensorrt(onnx_in, out / "model.engine", precision)
        return engine.name, ["model.spec.json", "model.build.json"]

    return build


TARGETS: dict[str, Target] = {
    t.key: t
    for t in (
        Target("onnx-fp32", "onnxruntime", "fp32", False, "the source ONNX as is (onnxruntime)", _onnx_fp32),
        Target("onnx-int8", "onnxruntime", "int8", True, "onnxruntime static QDQ int8, per-channel", _onnx_int8),
        Target("openvino-fp32", "openvino", "fp32", False, "OpenVINO IR, fp32 weights", _openvino("fp32")),
        Target("openvino-fp16", "openvino", "fp16", False, "OpenVINO IR, fp16-compressed weights", _openvino("fp16")),
        Target("openvino-int8", "openvino", "int8", True, "OpenVINO IR, NNCF post-training int8", _openvino("int8")),
        Target("onnx-fp32-u8", "onnxruntime", "fp32", False, "onnx-fp32 taking uint8 NHWC, normalised in the graph",
               _onnx_u8("fp32"), uint8_input=True),
        Target("onnx-int8-u8", "onnxruntime", "int8", True, "onnx-int8 taking uint8 NHWC, normalised in the graph",
               _onnx_u8("int8"), uint8_input=True),
        Target("openvino-fp32-u8", "openvino", "fp32", False, "openvino-fp32 with a uint8 NHWC input (PrePostProcessor)",
               _openvino("fp32", uint8_input=True), uint8_input=True),
        Target("openvino-int8-u8", "openvino", "int8", True, "openvino-int8 with a uint8 NHWC input (PrePostProcessor)",
               _openvino("int8", uint8_input=True), uint8_input=True),
        Target("tensorrt-fp16", "tensorrt", "fp16", False, "TensorRT 10 engine, fp16", _tensorrt("fp16")),
        Target("tensorrt-int8", "tensorrt", "int8", True, "TensorRT 10 engine from a QDQ ONNX", _tensorrt("int8")),
    )
}


def get_target(key: str) -> Target:
    """The row for ``key``; :class:`BadInput` listing the known keys otherwise."""
    if key not in TARGETS:
        raise BadInput(f"unknown conversion target {key!r}; known: {', '.join(TARGETS)}")
    return TARGETS[key]
