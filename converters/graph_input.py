"""ONNX variant whose graph takes the letterboxed uint8 NHWC image and normalises it inside.

:func:`uint8_input_onnx` prepends ``Transpose`` (NHWC -> NCHW, on uint8: a quarter of the bytes),
``Cast`` (to float), ``Mul`` and ``Add`` — ``(x / 255 - mean) / std`` folded into one scale and one
offset per channel — to a contract ONNX (fp32 or int8 QDQ), and rewrites its ``ymir.spec`` to
schema 2 (``layout=NHWC``, ``input_dtype=uint8``, ``normalize=in_graph``; see
:mod:`detkit.manifest`). The runtime then feeds the letterbox canvas as is and skips its numpy
normalisation. OpenVINO does the same with its PrePostProcessor (:mod:`converters.openvino`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from converters.source import set_spec_metadata
from detkit.errors import BadModel
from detkit.manifest import ModelSpec

log = logging.getLogger(__name__)


def scale_offset(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, offset)`` with ``x * scale + offset == (x / 255 - mean) / std``."""
    mean = np.asarray(spec.mean, dtype=np.float64)
    std = np.asarray(spec.std, dtype=np.float64)
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def uint8_input_onnx(src: str | Path, out: str | Path, spec: ModelSpec) -> ModelSpec:
    """Write ``src`` (an ONNX detector of ``spec``, classic input) to ``out`` with the uint8 NHWC
    input normalised in the graph; returns the new (schema 2) spec, also written as ``ymir.spec``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    if spec.in_graph:
        raise BadModel(f"{src}: already takes uint8 NHWC input (normalize=in_graph)")
    graph = model.graph
    inputs = [i for i in graph.input if i.name == spec.input_name]
    if not inputs:
        raise BadModel(f"{src}: no input {spec.input_name!r} to put the uint8 NHWC input in front of")
    old = inputs[0]
    inner = f"{spec.input_name}/normalized"
    for node in graph.node:  # everything that read the float input now reads the normalised tensor
        node.input[:] = [inner if name == spec.input_name else name for name in node.input]
    for output in graph.output:
        if output.name == spec.input_name:
            raise BadModel(f"{src}: input {spec.input_name!r} is also an output")
    batch = old.type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or (batch.dim_value if batch.HasField("dim_value") else "N")
    size = spec.input_size
    new_input = helper.make_tensor_value_info(spec.input_name, TensorProto.UINT8, [batch_dim, size, size, 3])
    scale, offset = scale_offset(spec)
    prefix = f"{spec.input_name}/uint8_input"
    graph.initializer.extend([
        numpy_helper.from_array(scale.reshape(1, 3, 1, 1), f"{prefix}/scale"),
        numpy_helper.from_array(offset.reshape(1, 3, 1, 1), f"{prefix}/offset"),
    ])
    nodes = [
        helper.make_node("Transpose", [spec.input_name], [f"{prefix}/nchw"], name=f"{prefix}/transpose", perm=[0, 3, 1, 2]),
        helper.make_node("Cast", [f"{prefix}/nchw"], [f"{prefix}/float"], name=f"{prefix}/cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", [f"{prefix}/float", f"{prefix}/scale"], [f"{prefix}/scaled"], name=f"{prefix}/mul"),
        helper.make_node("Add", [f"{prefix}/scaled", f"{prefix}/offset"], [inner], name=f"{prefix}/add"),
    ]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    position = list(graph.input).index(old)
    graph.input.remove(old)
    graph.input.insert(position, new_input)
    new_spec = spec.with_graph_input()
    set_spec_metadata(model, new_spec.to_json())
    onnx.checker.check_model(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    log.info("%s: uint8 NHWC input normalised in the graph -> %s", src, out)
    return new_spec
