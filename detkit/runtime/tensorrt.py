"""TensorRT backend: runs serialized TensorRT 10 engines (``.engine`` / ``.plan``) on an NVIDIA GPU.

Key ``tensorrt``; config :class:`Config`. ``tensorrt`` and ``cuda-python`` (for device memory and
streams) are imported inside :func:`open_session`; without them the backend reports
"unavailable: pip install 'ymir-edge[tensorrt]'". Engines are built by
``converters.tensorrt.to_tensorrt``, which writes the ModelSpec beside the engine
(``<stem>.spec.json``) since an engine has no metadata of its own.

Written against the TensorRT 10 tensor API (``num_io_tensors``, ``get_tensor_name``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``); binding indices, removed in
TensorRT 10, are not used.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.errors import BadInput, BadModel, Unavailable
from detkit.runtime.base import OIP_DATATYPES, TensorInfo

log = logging.getLogger(__name__)

KEY = "tensorrt"
EXTRA = "tensorrt"
SUFFIXES = (".engine", ".plan")


@dataclass
class Config:
    """TensorRT settings: which optimisation profile to use."""

    profile: int = 0


def _cudart():
    """cuda-python's runtime module under its new (12.6+) or old import path."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        from cuda import cudart  # type: ignore[import-not-found,no-redef]
    return cudart


def probe() -> tuple[bool, str]:
    """Whether TensorRT and cuda-python import here, and why not."""
    try:
        trt = importlib.import_module("tensorrt")
        _cudart()
    except ImportError as exc:
        return False, f"unavailable: pip install 'ymir-edge[{EXTRA}]' (needs tensorrt>=10 and cuda-python; {exc})"
    except Exception as exc:  # the PyPI stub raises on import when the real wheel is absent
        return False, f"unavailable: pip install 'ymir-edge[{EXTRA}]' ({exc})"
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        return False, f"unavailable: TensorRT {trt.__version__} found, this backend needs TensorRT >= 10"
    return True, f"tensorrt {trt.__version__}"


def _check(result, what: str):
    """cuda-python returns ``(err, *values)``; raise on a non-zero error code."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise Unavailable(f"backend {KEY}: CUDA call {what} failed with error {int(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class TrtSession:
    """A deserialized TensorRT engine with one execution context and one CUDA stream."""

    def __init__(self, model_path: Path, device: str, config: Config):
        ok, reason = probe()
        if not ok:
            raise Unavailable(f"backend {KEY} {reason}")
        import tensorrt as trt

        self._trt = trt
        self._cudart = cudart = _cudart()
        kind, _, index = device.partition(":")
        if kind not in ("cuda", "gpu"):
            raise Unavailable(f"backend {KEY}: runs on cuda devices only, not {device!r}")
        _check(cudart.cudaSetDevice(int(index or 0)), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(Path(model_path).read_bytes())
        if engine is None:
            raise BadModel(
                f"{model_path}: TensorRT cannot deserialize it (not an engine, or built by another "
                "TensorRT version / GPU; rebuild it with ymir-convert tensorrt)"
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        if config.profile:
            self._context.set_optimization_profile_async(config.profile, int(self._stream))
        self._profile = config.profile
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._output_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.inputs = [self._info(n) for n in self._input_names]
        self.outputs = [self._info(n) for n in self._output_names]
        self.device = f"cuda:{int(index or 0)}"
        self.precision = "fp32"  # the package manifest / side spec says what it was built as
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity bytes)
        self._lock = threading.Lock()  # one context, one stream, shared buffers: one run at a time

    def _info(self, name: str) -> TensorInfo:
        dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))
        shape = tuple(int(d) if int(d) >= 0 else -1 for d in self._engine.get_tensor_shape(name))
        return TensorInfo(name, OIP_DATATYPES[dtype.name], shape)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr), "cudaFree")
            ptr = _check(self._cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self._run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, ctx = self._cudart, self._context
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._input_names:
            arr = np.ascontiguousarray(feeds[name])
            if not ctx.set_input_shape(name, tuple(arr.shape)):
                raise BadInput(f"input {name!r}: shape {list(arr.shape)} is outside the engine's optimisation profile")
            ptr = self._buffer(name, arr.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self._stream), "cudaMemcpyAsync")
            ctx.set_tensor_address(name, ptr)
        outs = {}
        for info in self.outputs:
            shape = tuple(ctx.get_tensor_shape(info.name))
            out = np.empty(shape, dtype=info.dtype)
            ctx.set_tensor_address(info.name, self._buffer(info.name, max(out.nbytes, 1)))
            outs[info.name] = out
        if not ctx.execute_async_v3(int(self._stream)):  # TensorRT takes the raw handle as an int
            raise Unavailable(f"backend {KEY}: execute_async_v3 failed")
        for name, out in outs.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self._stream), "cudaMemcpyAsync")
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return outs

    def metadata(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None


def open_session(model_path: Path, device: str, config: Config) -> TrtSession:
    """Open a serialized engine on ``device`` (``cuda`` or ``cuda:N``)."""
    return TrtSession(Path(model_path), device, config)
