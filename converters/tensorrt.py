"""TensorRT 10 engines from a contract ONNX detector (fp16, or int8 from a QDQ ONNX).

int8 uses *explicit* quantization: the ONNX must already carry QuantizeLinear/DequantizeLinear
nodes (``ymir-convert quantize`` writes them), so no deprecated implicit calibrator is involved.
Engines are specific to the TensorRT version and the GPU, so each build is cached under a key
made of the ONNX sha256, the TensorRT version, the GPU name, the precision and the shape profile
(:func:`engine_cache_key`).

TensorRT cannot be installed on every machine: only :func:`engine_cache_key` and
:func:`build_plan` are pure; :func:`to_tensorrt` imports ``tensorrt`` (and cuda-python for the GPU
name) when called and raises :class:`Unavailable` without them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from converters.source import read_source
from detkit.errors import BadInput, BadModel, Unavailable
from detkit.runtime.registry import SIDE_SPEC_SUFFIX

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "int8")


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides what engine TensorRT builds (and so goes into the cache key)."""

    precision: str
    input_name: str
    input_size: int
    min_batch: int
    opt_batch: int
    max_batch: int
    workspace_bytes: int
    builder_flags: tuple[str, ...]  # names of trt.BuilderFlag members to set

    def profile_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes of the optimisation profile."""
        s = self.input_size
        return tuple((b, 3, s, s) for b in (self.min_batch, self.opt_batch, self.max_batch))  # type: ignore[return-value]


def build_plan(
    precision: str, input_name: str, input_size: int, *, is_qdq: bool, max_batch: int = 8,
    opt_batch: int = 1, workspace_mb: int = 1024,
) -> BuildPlan:
    """Validate the arguments and decide the builder flags (pure; no TensorRT needed).

    fp16: ``FP16``. int8: ``INT8`` + ``FP16`` (layers left unquantized run in half precision) and
    the ONNX must be QDQ (explicit quantization).
    """
    if precision not in PRECISIONS:
        raise BadInput(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and not is_qdq:
        raise BadInput(
            "TensorRT int8 builds from a QDQ ONNX (explicit quantization); run `ymir-convert quantize` first "
            "and pass its output"
        )
    if not 1 <= opt_batch <= max_batch:
        raise BadInput(f"need 1 <= opt_batch <= max_batch, got {opt_batch} and {max_batch}")
    if workspace_mb < 16:
        raise BadInput(f"workspace must be at least 16 MiB, got {workspace_mb}")
    flags = ("FP16",) if precision == "fp16" else ("INT8", "FP16")
    return BuildPlan(precision, input_name, input_size, 1, opt_batch, max_batch, workspace_mb << 20, flags)


def engine_cache_key(onnx_sha256: str, trt_version: str, gpu_name: str, plan: BuildPlan) -> str:
    """sha256 over the ONNX digest, TensorRT version, GPU name and the build plan (pure)."""
    if len(onnx_sha256) != 64:
        raise BadInput(f"onnx_sha256 must be a sha256 hex digest, got {onnx_sha256!r}")
    blob = json.dumps(
        {"onnx": onnx_sha256, "trt": trt_version, "gpu": gpu_name.strip(), "plan": asdict(plan)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _gpu_name(index: int = 0) -> str:
    from detkit.runtime.tensorrt import _check, _cudart

    props = _check(_cudart().cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name
    return name.decode(errors="replace").rstrip("\x00") if isinstance(name, bytes) else str(name)


def _build(onnx_path: Path, plan: BuildPlan) -> bytes:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BadModel(f"{onnx_path}: TensorRT's ONNX parser refused it ({errors[:500]})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, *plan.profile_shapes())
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BadModel(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    return bytes(serialized)


def to_tensorrt(
    src: str | Path,
    out: str | Path,
    precision: str = "fp16",
    *,
    max_batch: int = 8,
    opt_batch: int = 1,
    workspace_mb: int = 1024,
    cache_dir: str | Path | None = None,
    gpu: int = 0,
) -> Path:
    """Build (or take from ``cache_dir``) a TensorRT engine for ``src``; write it to ``out``.

    Also writes ``<stem>.spec.json`` (the ModelSpec) and ``<stem>.build.json`` (cache key, TensorRT
    version, GPU, plan) beside ``out``. int8 needs a QDQ ONNX (see module docstring).
    """
    from detkit.runtime.tensorrt import probe

    source = read_source(src)
    plan = build_plan(
        precision, source.spec.input_name, source.spec.input_size, is_qdq=source.is_qdq,
        max_batch=max_batch, opt_batch=opt_batch, workspace_mb=workspace_mb,
    )
    ok, reason = probe()
    if not ok:
        raise Unavailable(f"TensorRT conversion {reason}")
    import tensorrt as trt

    gpu_name = _gpu_name(gpu)
    key = engine_cache_key(source.sha256, trt.__version__, gpu_name, plan)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cached = Path(cache_dir) / f"{key}.engine" if cache_dir else None
    if cached is not None and cached.is_file():
        log.info("TensorRT engine cache hit %s", cached)
        shutil.copyfile(cached, out)
    else:
        log.info("building TensorRT %s engine for %s on %s (TensorRT %s)", precision, source.path, gpu_name, trt.__version__)
        out.write_bytes(_build(source.path, plan))
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, cached)
    out.with_name(out.stem + SIDE_SPEC_SUFFIX).write_text(source.spec.to_json())
    build = {"cache_key": key, "tensorrt": trt.__version__, "gpu": gpu_name, "source_sha256": source.sha256,
             "plan": asdict(plan)}
    out.with_name(out.stem + ".build.json").write_text(json.dumps(build, indent=2, sort_keys=True))
    return out
