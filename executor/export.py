"""ONNX export of the trained detector, with its :class:`ModelSpec` embedded.

One self-contained file (``dynamo=False``, opset 17: the dynamo exporter writes external data,
which breaks onnxruntime quantization), dynamic batch axis, ``metadata_props["ymir.spec"]``.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from detkit.manifest import METADATA_KEY, ModelSpec
from executor.model import Detector, ExportModel

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(model: Detector, spec: ModelSpec, path: Path) -> Path:
    """Write ``model`` as ONNX to ``path`` (inputs/outputs named as ``spec`` says)."""
    net = ExportModel(copy.deepcopy(model).cpu().eval())
    dummy = torch.zeros(1, 3, spec.input_size, spec.input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (dummy,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[spec.input_name],
            output_names=[spec.outputs["heatmap"], spec.outputs["distances"]],
            dynamic_axes={spec.input_name: {0: "batch"}, spec.outputs["heatmap"]: {0: "batch"},
                          spec.outputs["distances"]: {0: "batch"}},
        )
    proto = onnx.load_model_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec.to_json()
    proto.producer_name = "ymir-edge-executor"
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    log.info("exported %s (%d bytes)", path, path.stat().st_size)
    return path
