"""The source of every conversion: a contract ONNX detector, read and checked once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.data import ImageSet
from detkit.errors import BadInput, BadModel
from detkit.manifest import METADATA_KEY, ModelSpec
from detkit.package import sha256_file
from detkit.runtime.base import OIP_DATATYPES, TensorInfo, check_io
from detkit.runtime.prepost import letterbox, normalize

Progress = Callable[[int], None]


@dataclass
class SourceModel:
    """A checked ONNX detector: its path, parsed graph, spec and sha256."""

    path: Path
    model: object  # onnx.ModelProto
    spec: ModelSpec
    sha256: str

    @property
    def is_qdq(self) -> bool:
        return any(n.op_type == "QuantizeLinear" for n in self.model.graph.node)


def _infos(values) -> list[TensorInfo]:
    import onnx

    out = []
    for v in values:
        tt = v.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name if tt.elem_type else "float32"
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        out.append(TensorInfo(v.name, OIP_DATATYPES.get(dtype, "FP32"), shape))
    return out


def read_source(path: str | Path) -> SourceModel:
    """Load and check an ONNX detector; :class:`BadModel` names the file and what is wrong.

    Checks: it parses as ONNX, carries ``ymir.spec`` metadata, and its inputs/outputs fit that spec.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise BadModel(f"{path}: not an ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not model.graph.node:
        raise BadModel(f"{path}: not an ONNX model (no graph nodes)")
    meta = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in meta:
        raise BadModel(
            f"{path}: ONNX has no {METADATA_KEY!r} metadata; conversions need the model spec "
            "(input size, normalisation, output decoding) the built-in executor writes"
        )
    spec = ModelSpec.from_json(meta[METADATA_KEY], f"{path}: {METADATA_KEY}")
    if spec.in_graph:
        raise BadModel(f"{path}: takes uint8 NHWC input normalised in its graph (a -u8 conversion result); "
                       "conversions start from the classic float NCHW ONNX")
    inits = {i.name for i in model.graph.initializer}
    inputs = _infos([i for i in model.graph.input if i.name not in inits])
    check_io(spec, inputs, _infos(model.graph.output), str(path))
    return SourceModel(path=path, model=model, spec=spec, sha256=sha256_file(path))


def set_spec_metadata(model, spec_json: str) -> None:
    """Set the ONNX ``model``'s ``ymir.spec`` entry to ``spec_json``, keeping its other metadata entries."""
    meta = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    for key, value in {**meta, METADATA_KEY: spec_json}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def input_batches(
    images: ImageSet, spec: ModelSpec, dtype=np.float32, progress: Progress | None = None
) -> Iterator[np.ndarray]:
    """Batch-1 model inputs, letterboxed and normalised exactly as at inference."""
    for sample in images:
        canvas, _ = letterbox(sample.image(), spec.input_size, spec.pad_value)
        yield normalize(canvas[None], spec.mean, spec.std).astype(dtype, copy=False)
        if progress:
            progress(1)


def head_nodes(model, output_names: list[str]) -> list[str]:
    """Names of the nodes from each output back to (and including) the last Conv/Gemm/MatMul.

    Quantizing these — the sigmoid, softplus, scaling, concat of a detection head — collapses
    small scores to zero, so quantizers leave them in float.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    stop = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
    seen: list[str] = []
    todo = list(output_names)
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.append(node.name)
        if node.op_type not in stop:
            todo.extend(i for i in node.input if i in producer)
    return [n for n in seen if n]
