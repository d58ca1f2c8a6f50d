"""The model contract: what a detector's input and output look like (schema version 1).

A :class:`ModelSpec` travels *inside* every ONNX model the built-in executor exports, as the
ONNX ``metadata_props`` entry ``ymir.spec`` (a JSON object), and is copied into every model
package's ``manifest.json`` under ``"spec"``. Runtimes read it to letterbox, normalise and decode,
so a package needs no side files to be served.

Input: one float32 tensor ``input_name`` of shape (N, 3, size, size), RGB, NCHW,
``(pixel / 255 - mean) / std``, longest-edge letterbox to ``size``, top-left aligned, pad 114.

Output decoding ``"centernet"``: two tensors, ``heatmap`` (N, C, size/stride, size/stride,
sigmoid applied) and ``distances`` (N, 4, size/stride, size/stride: left, top, right, bottom in
input pixels from the cell centre); see :func:`detkit.runtime.prepost.decode_centernet`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from detkit.errors import BadModel

SPEC_SCHEMA = 1
METADATA_KEY = "ymir.spec"
DECODINGS = ("centernet",)


@dataclass
class ModelSpec:
    """Input/output contract of a detector model (see module docstring)."""

    class_names: list[str]
    input_size: int
    input_name: str = "images"
    layout: str = "NCHW"
    color: str = "RGB"
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    pad_value: int = 114
    decoding: str = "centernet"
    stride: int = 4
    outputs: dict[str, str] = field(default_factory=lambda: {"heatmap": "heatmap", "distances": "distances"})
    schema: int = SPEC_SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model spec") -> ModelSpec:
        """Validate and build; raises :class:`BadModel` saying which field is wrong and where."""
        if not isinstance(data, dict):
            raise BadModel(f"{where}: expected a JSON object")
        if data.get("schema", SPEC_SCHEMA) != SPEC_SCHEMA:
            raise BadModel(f"{where}: unsupported spec schema {data.get('schema')!r} (this build reads {SPEC_SCHEMA})")
        names = data.get("class_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise BadModel(f"{where}: class_names must be a non-empty list of names")
        size = data.get("input_size")
        if not isinstance(size, int) or size <= 0 or size % data.get("stride", 4):
            raise BadModel(f"{where}: input_size must be a positive multiple of the stride, got {size!r}")
        if data.get("decoding", "centernet") not in DECODINGS:
            raise BadModel(f"{where}: unknown output decoding {data.get('decoding')!r}; known: {', '.join(DECODINGS)}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str, where: str = "model spec") -> ModelSpec:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise BadModel(f"{where}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, where)
