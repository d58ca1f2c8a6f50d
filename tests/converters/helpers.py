"""Small ONNX graphs for bad-input tests, written with onnx.helper (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from detkit.manifest import METADATA_KEY, ModelSpec


def conv_onnx(path: Path, outputs: dict[str, int], size: int = 32, spec: ModelSpec | None = None) -> Path:
    """A graph input ``images`` (N,3,size,size) -> one stride-4 conv per named output (channels)."""
    nodes, inits, outs = [], [], []
    for name, channels in outputs.items():
        w = numpy_helper.from_array(np.full((channels, 3, 4, 4), 0.01, np.float32), f"{name}_w")
        inits.append(w)
        nodes.append(helper.make_node("Conv", ["images", w.name], [f"{name}_conv"], strides=[4, 4], name=f"{name}_c"))
        nodes.append(helper.make_node("Sigmoid", [f"{name}_conv"], [name], name=f"{name}_s"))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, size // 4, size // 4]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, size, size])], outs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if spec is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, spec.to_json()
    onnx.save(model, str(path))
    return path
