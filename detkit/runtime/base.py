"""The :class:`Detector` every runtime backend is wrapped in, and what it returns.

A backend only provides a :class:`Session` (raw tensors in, raw tensors out). Everything a user
sees — letterbox, normalisation, CenterNet decode, class-wise NMS, mapping boxes back to original
pixels — is done here, once, driven by the model's :class:`detkit.manifest.ModelSpec`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from detkit.boxes import batched_nms
from detkit.errors import BadInput, BadModel
from detkit.manifest import ModelSpec
from detkit.runtime.prepost import Letterbox, decode_centernet, letterbox, normalize, unletterbox

log = logging.getLogger(__name__)

# numpy dtype name -> Open Inference Protocol datatype
OIP_DATATYPES = {
    "float32": "FP32", "float16": "FP16", "float64": "FP64", "int8": "INT8", "uint8": "UINT8",
    "int16": "INT16", "uint16": "UINT16", "int32": "INT32", "uint32": "UINT32", "int64": "INT64",
    "uint64": "UINT64", "bool": "BOOL",
}
NUMPY_DTYPES = {v: k for k, v in OIP_DATATYPES.items()}

ImageLike = Image.Image | np.ndarray | bytes | bytearray | str | Path


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output: name, OIP datatype (``FP32``...) and shape (-1 where dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(NUMPY_DTYPES[self.datatype])


class Session(Protocol):
    """What a backend module's ``open_session`` returns."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    precision: str  # fp32 | fp16 | int8
    device: str  # what actually runs it, in the backend's words

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns every output by name."""
        ...

    def metadata(self) -> dict[str, str]:
        """Model metadata (ONNX ``metadata_props``, IR ``rt_info``) — where ``ymir.spec`` lives."""
        ...


@dataclass
class Detections:
    """Detections of one image, in ORIGINAL image pixels, best first."""

    boxes: np.ndarray  # (K, 4) float32 xyxy
    scores: np.ndarray  # (K,) float32
    class_ids: np.ndarray  # (K,) int64
    class_names: list[str]  # (K,) names, class_names[i] == names[class_ids[i]]
    width: int = 0
    height: int = 0

    def __len__(self) -> int:
        return len(self.scores)

    def to_json(self) -> dict:
        """``{"width", "height", "detections": [{"box": [x1, y1, x2, y2], "score", "class_id", "class_name"}]}``."""
        return {
            "width": self.width,
            "height": self.height,
            "detections": [
                {
                    "box": [round(float(v), 2) for v in box],
                    "score": round(float(s), 5),
                    "class_id": int(c),
                    "class_name": n,
                }
                for box, s, c, n in zip(self.boxes, self.scores, self.class_ids, self.class_names, strict=True)
            ],
        }


def to_pil(image: ImageLike, where: str = "image") -> Image.Image:
    """Accept a PIL image, an HWC (or HW) uint8 RGB array, encoded bytes or a path; return RGB PIL."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise BadInput(f"{where}: array dtype must be uint8, got {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
            raise BadInput(f"{where}: array must be HxWx3 (RGB) uint8, got shape {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image[:, :, :3]))
    if isinstance(image, bytes | bytearray):
        src: Any = io.BytesIO(image)
    elif isinstance(image, str | Path):
        src = image
    else:
        raise BadInput(f"{where}: unsupported image type {type(image).__name__}")
    try:
        with Image.open(src) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"{where}: not a readable image ({exc})") from None


def check_io(spec: ModelSpec, inputs: list[TensorInfo], outputs: list[TensorInfo], where: str) -> None:
    """Raise :class:`BadModel` (naming ``where``) unless the tensors fit the spec's detector contract."""
    ins = {t.name: t for t in inputs}
    outs = {t.name: t for t in outputs}
    have = f"inputs {sorted(ins)}, outputs {sorted(outs)}"
    t = ins.get(spec.input_name)
    if t is None or len(t.shape) != 4:
        raise BadModel(f"{where}: not a detector of this spec: needs a 4-D input {spec.input_name!r}; has {have}")
    want = spec.input_shape()
    if any(d >= 0 and w >= 0 and d != w for d, w in zip(t.shape, want, strict=True)):
        wanted = ", ".join(["N", *map(str, want[1:])])
        raise BadModel(f"{where}: input {t.name!r} has shape {list(t.shape)}, spec wants [{wanted}] ({spec.layout})")
    if spec.in_graph and t.datatype != OIP_DATATYPES[spec.input_dtype]:
        raise BadModel(f"{where}: input {t.name!r} is {t.datatype}; a spec with normalize=in_graph wants "
                       f"{OIP_DATATYPES[spec.input_dtype]} (the letterboxed image as is)")
    cells = spec.input_size // spec.stride
    for role, channels in (("heatmap", len(spec.class_names)), ("distances", 4)):
        name = spec.outputs.get(role)
        o = outs.get(name)
        if o is None or len(o.shape) != 4:
            raise BadModel(f"{where}: not a detector of this spec: needs a 4-D {role} output {name!r}; has {have}")
        want = (-1, channels, cells, cells)
        if any(d >= 0 and w >= 0 and d != w for d, w in zip(o.shape[1:], want[1:], strict=True)):
            raise BadModel(f"{where}: {role} output {name!r} has shape {list(o.shape)}, spec wants [N, {channels}, {cells}, {cells}]")


def _is_single(images: Any) -> bool:
    if isinstance(images, np.ndarray):
        return images.ndim in (2, 3)
    return isinstance(images, Image.Image | bytes | bytearray | str | Path)


@dataclass
class Detector:
    """A loaded model: raw :meth:`run` for servers, :meth:`detect` for images, :attr:`info`.

    Built by :func:`detkit.runtime.load`; ``spec`` is ``None`` for an ONNX without ``ymir.spec``
    metadata (then only :meth:`run` works).
    """

    session: Session
    spec: ModelSpec | None
    backend: str
    model_path: Path
    sha256: str
    batch_size: int = 8
    package: dict = field(default_factory=dict)  # manifest fields when loaded from a package
    _keep: list = field(default_factory=list, repr=False)  # temp dirs that must outlive the session
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    # ---- metadata -------------------------------------------------------------------------
    @property
    def inputs(self) -> list[dict]:
        """OIP input metadata: ``[{"name", "datatype", "shape"}]`` (-1 where dynamic)."""
        return [t.to_json() for t in self.session.inputs]

    @property
    def outputs(self) -> list[dict]:
        """OIP output metadata: ``[{"name", "datatype", "shape"}]`` (-1 where dynamic)."""
        return [t.to_json() for t in self.session.outputs]

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names) if self.spec else []

    @property
    def info(self) -> dict:
        """Backend, precision, input shape, classes, model sha256, device (+ package name/version)."""
        first = self.session.inputs[0]
        return {
            "backend": self.backend,
            "precision": self.package.get("precision") or self.session.precision,
            "device": self.session.device,
            "input_name": first.name,
            "input_shape": list(first.shape),
            "classes": self.class_names,
            "sha256": self.sha256,
            "model": self.model_path.name,
            "name": self.package.get("name", self.model_path.stem),
            "version": self.package.get("version", ""),
            "has_spec": self.spec is not None,
        }

    # ---- raw tensors ----------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw inference: every model input by name -> every output by name (for the OIP server)."""
        expected = {t.name: t for t in self.session.inputs}
        missing = sorted(set(expected) - set(inputs))
        extra = sorted(set(inputs) - set(expected))
        if missing or extra:
            raise BadInput(f"inputs: expected {sorted(expected)}, missing {missing}, unexpected {extra}")
        feeds = {}
        for name, arr in inputs.items():
            t = expected[name]
            arr = np.asarray(arr)
            if arr.ndim != len(t.shape) or any(d >= 0 and d != s for d, s in zip(t.shape, arr.shape, strict=True)):
                raise BadInput(f"input {name!r}: shape {list(arr.shape)} does not fit {list(t.shape)}")
            if arr.dtype != t.dtype:
                if not np.can_cast(arr.dtype, t.dtype, casting="same_kind"):
                    raise BadInput(f"input {name!r}: datatype {arr.dtype} cannot be used as {t.datatype}")
                arr = arr.astype(t.dtype)
            feeds[name] = np.ascontiguousarray(arr)
        return self.session.run(feeds)

    # ---- images ---------------------------------------------------------------------------
    def _require_spec(self) -> ModelSpec:
        if self.spec is None:
            raise BadModel(
                f"{self.model_path}: the model carries no 'ymir.spec' metadata, so detect() cannot pre- or "
                "post-process; use run() with raw tensors, or package the model with its spec"
            )
        return self.spec

    def preprocess(self, images: Sequence[ImageLike]) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox + normalise a list of images into one model input batch.

        NCHW float for a classic spec; for a spec with ``normalize="in_graph"`` the letterboxed
        uint8 NHWC batch as is (the model's graph does the rest).
        """
        spec = self._require_spec()
        canvases, boxes = [], []
        for i, img in enumerate(images):
            canvas, lb = letterbox(to_pil(img, f"image {i}"), spec.input_size, spec.pad_value)
            canvases.append(canvas)
            boxes.append(lb)
        if spec.in_graph:
            return np.stack(canvases), boxes
        batch = normalize(np.stack(canvases), spec.mean, spec.std)
        return batch.astype(self.session.inputs[0].dtype, copy=False), boxes

    def _chunk(self) -> tuple[int, bool]:
        """How many images per session call, and whether the batch dim is fixed (pad to it)."""
        dim = self.session.inputs[0].shape[0]
        return (dim, True) if dim > 0 else (max(1, self.batch_size), False)

    def detect(
        self, images: ImageLike | Sequence[ImageLike], conf: float = 0.25, iou: float = 0.5, max_det: int = 100
    ) -> list[Detections]:
        """Detect objects; returns one :class:`Detections` per image (boxes in original pixels).

        ``images``: PIL images, HWC uint8 RGB arrays, encoded bytes or paths (one or a list).
        """
        spec = self._require_spec()
        if not 0.0 <= conf <= 1.0 or not 0.0 < iou <= 1.0 or max_det < 1:
            raise BadInput(f"detect: need 0<=conf<=1, 0<iou<=1, max_det>=1 (got {conf}, {iou}, {max_det})")
        items = [images] if _is_single(images) else list(images)
        size, fixed = self._chunk()
        heat_name, dist_name = spec.outputs["heatmap"], spec.outputs["distances"]
        results: list[Detections] = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            batch, lbs = self.preprocess(chunk)
            if fixed and len(chunk) < size:
                batch = np.concatenate([batch, np.zeros((size - len(chunk), *batch.shape[1:]), batch.dtype)])
            out = self.session.run({self.session.inputs[0].name: batch})
            heat = np.asarray(out[heat_name], dtype=np.float32)
            dist = np.asarray(out[dist_name], dtype=np.float32)
            decoded = decode_centernet(heat[: len(chunk)], dist[: len(chunk)], spec.stride, conf, max_det)
            for (boxes, scores, cls), lb in zip(decoded, lbs, strict=True):
                keep = batched_nms(boxes, scores, cls, iou)
                boxes = unletterbox(boxes[keep], lb).astype(np.float32)
                cls = cls[keep]
                names = [spec.class_names[c] if c < len(spec.class_names) else str(c) for c in cls]
                results.append(Detections(boxes, scores[keep], cls, names, lb.width, lb.height))
        return results

    def warmup(self) -> None:
        """One run on zeros so the first real request does not pay allocation/JIT costs."""
        feeds = {}
        for t in self.session.inputs:
            full = self.spec.input_shape() if self.spec else ()
            shape = [d if d > 0 else (1 if i == 0 or i >= len(full) else full[i]) for i, d in enumerate(t.shape)]
            feeds[t.name] = np.zeros(shape, dtype=t.dtype)
        self.session.run(feeds)

    def close(self) -> None:
        """Release the session and any temp folder a zip package was unpacked to."""
        for closer in self._closers:
            closer()
        for tmp in self._keep:
            tmp.cleanup()
        self._keep.clear()
        self._closers.clear()
