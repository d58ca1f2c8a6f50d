"""onnxruntime backend (the default): opens ``.onnx`` models on CPU or CUDA.

Key ``onnxruntime``; config :class:`Config`. The SDK is imported inside :func:`open_session` so
importing this module never fails.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.errors import BadModel, Unavailable
from detkit.runtime.base import OIP_DATATYPES, TensorInfo

log = logging.getLogger(__name__)

KEY = "onnxruntime"
EXTRA = "agent"
SUFFIXES = (".onnx",)
DEVICES = ("cpu", "cuda")

# ONNX tensor type strings as onnxruntime reports them -> numpy dtype names
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(bool)": "bool", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
}


@dataclass
class Config:
    """onnxruntime settings: ``threads`` (0 = onnxruntime decides), graph optimisation level, and
    ``spinning``: whether idle pool threads busy-wait (fast on an idle box, but on a 2-core device they
    steal the CPU the HTTP server needs, so off by default)."""

    threads: int = 0
    optimization: str = "all"  # disable | basic | extended | all
    spinning: bool = False


def probe() -> tuple[bool, str]:
    """Whether the SDK imports here, and why not."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        return False, f"unavailable: pip install 'ymir-edge[{EXTRA}]' ({exc})"
    return True, f"onnxruntime {ort.__version__}; providers: {', '.join(ort.get_available_providers())}"


def _tensor_info(node) -> TensorInfo:
    dtype = _ORT_TYPES.get(node.type, "float32")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return TensorInfo(node.name, OIP_DATATYPES[dtype], shape)


class OrtSession:
    """An ``onnxruntime.InferenceSession`` behind the :class:`detkit.runtime.base.Session` protocol."""

    def __init__(self, model_path: Path, device: str, config: Config):
        ok, reason = probe()
        if not ok:
            raise Unavailable(f"backend {KEY} {reason}")
        import onnxruntime as ort

        kind, _, index = device.partition(":")
        if kind not in DEVICES:
            raise Unavailable(f"backend {KEY}: unknown device {device!r}; known: {', '.join(DEVICES)}")
        if kind == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise Unavailable(f"backend {KEY}: CUDA requested but this onnxruntime has no CUDAExecutionProvider")
            providers = [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if config.threads:
            opts.intra_op_num_threads = int(config.threads)
        if not config.spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        opts.graph_optimization_level = levels.get(config.optimization, levels["all"])
        try:
            self._sess = ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BadModel(f"{model_path}: onnxruntime cannot load it as an ONNX model ({exc})") from None
        self.inputs = [_tensor_info(i) for i in self._sess.get_inputs()]
        self.outputs = [_tensor_info(o) for o in self._sess.get_outputs()]
        self._names = [o.name for o in self.outputs]
        self.device = self._sess.get_providers()[0]
        self.precision = _precision(model_path)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._sess.run(self._names, feeds), strict=True))

    def metadata(self) -> dict[str, str]:
        return dict(self._sess.get_modelmeta().custom_metadata_map)


def _precision(model_path: Path) -> str:
    """int8 when the graph holds QuantizeLinear nodes, fp16 for float16 inputs, else fp32.

    Needs the ``onnx`` package to look inside; without it the package manifest's precision is used.
    """
    try:
        import onnx
    except ImportError:
        return "fp32"
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # already loaded by onnxruntime; a parse quirk here must not block serving
        return "fp32"
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "QLinearConv", "DynamicQuantizeLinear"}:
        return "int8"
    if model.graph.input and model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
        return "fp16"
    return "fp32"


def open_session(model_path: Path, device: str, config: Config) -> OrtSession:
    """Open ``model_path`` (an ONNX file) on ``device`` (``cpu``, ``cuda`` or ``cuda:N``)."""
    return OrtSession(Path(model_path), device, config)
