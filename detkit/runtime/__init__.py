"""Runtime backends behind one :class:`Detector`: ``load(model_or_package) -> Detector``.

>>> det = load("model.onnx")                       # onnxruntime, CPU
>>> det = load("pkg.zip", backend="openvino")      # a verified package on OpenVINO
>>> [d.to_json() for d in det.detect([image])]     # boxes in original pixels
>>> det.run({"images": x})                         # raw tensors (Open Inference Protocol)

Backends (one module each, one table in :mod:`detkit.runtime.registry`): ``onnxruntime``
(default), ``openvino``, ``tensorrt``. SDKs are imported only when a backend is used;
:func:`available_backends` says which work here and why not.
"""

from detkit.runtime.base import Detections, Detector, TensorInfo
from detkit.runtime.registry import BACKENDS, DEFAULT_BACKEND, available_backends, load

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Detections", "Detector", "TensorInfo", "available_backends", "load"]
