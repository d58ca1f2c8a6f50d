"""The model contract: what a detector's input and output look like (schema versions 1 and 2).

A :class:`ModelSpec` travels *inside* every ONNX model the built-in executor exports, as the
ONNX ``metadata_props`` entry ``ymir.spec`` (a JSON object), and is copied into every model
package's ``manifest.json`` under ``"spec"``. Runtimes read it to letterbox, normalise and decode,
so a package needs no side files to be served.

Input: one float32 tensor ``input_name`` of shape (N, 3, size, size), RGB, NCHW,
``(pixel / 255 - mean) / std``, longest-edge letterbox to ``size``, top-left aligned, pad 114.

Schema 2 adds one input format (:data:`INPUT_FORMATS`): ``layout="NHWC"``, ``input_dtype="uint8"``,
``normalize="in_graph"`` — the model takes the letterboxed uint8 RGB image (N, size, size, 3) as it
is, and does the uint8 -> float, ``(x / 255 - mean) / std`` and NHWC -> NCHW inside its graph
(``mean``/``std`` stay in the spec as a record of what the graph does). A spec keeps schema 1 unless
it uses that format, so a reader that only knows schema 1 refuses exactly the models it could not
feed (``unsupported spec schema 2``) and serves every other one as before.

Output decoding ``"centernet"``: two tensors, ``heatmap`` (N, C, size/stride, size/stride,
sigmoid applied) and ``distances`` (N, 4, size/stride, size/stride: left, top, right, bottom in
input pixels from the cell centre); see :func:`detkit.runtime.prepost.decode_centernet`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from detkit.errors import BadModel

SPEC_SCHEMA = 1  # what a spec with the classic input is written as
SPEC_SCHEMAS = (1, 2)  # what this build reads
METADATA_KEY = "ymir.spec"
DECODINGS = ("centernet",)
HOST_INPUT = ("NCHW", "float32", "host")  # normalised by the runtime in numpy (every schema)
GRAPH_INPUT = ("NHWC", "uint8", "in_graph")  # the letterboxed uint8 image, normalised in the graph
# (layout, input_dtype, normalize) -> the lowest spec schema that can carry it
INPUT_FORMATS = {HOST_INPUT: 1, GRAPH_INPUT: 2}


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
    input_dtype: str = "float32"
    normalize: str = "host"  # host: the runtime normalises in numpy | in_graph: the model does

    @property
    def in_graph(self) -> bool:
        """True when the model takes the letterboxed uint8 NHWC image and normalises it itself."""
        return self.normalize == "in_graph"

    def input_shape(self) -> tuple[int, ...]:
        """The model input's shape, batch first (-1)."""
        size = self.input_size
        return (-1, size, size, 3) if self.layout == "NHWC" else (-1, 3, size, size)

    def with_graph_input(self) -> ModelSpec:
        """This spec for the variant whose graph takes uint8 NHWC and normalises inside (schema 2)."""
        layout, dtype, norm = GRAPH_INPUT
        return replace(self, layout=layout, input_dtype=dtype, normalize=norm, schema=INPUT_FORMATS[GRAPH_INPUT])

    def to_dict(self) -> dict:
        """The JSON object; a schema-1 spec is written without the schema-2 fields, as before them."""
        data = asdict(self)
        if self.schema < 2:
            data.pop("input_dtype")
            data.pop("normalize")
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model spec") -> ModelSpec:
        """Validate and build; raises :class:`BadModel` saying which field is wrong and where."""
        if not isinstance(data, dict):
            raise BadModel(f"{where}: expected a JSON object")
        schema = data.get("schema", SPEC_SCHEMA)
        if schema not in SPEC_SCHEMAS:
            raise BadModel(f"{where}: unsupported spec schema {schema!r} (this build reads {', '.join(map(str, SPEC_SCHEMAS))})")
        fmt = (data.get("layout", "NCHW"), data.get("input_dtype", "float32"), data.get("normalize", "host"))
        if fmt not in INPUT_FORMATS:
            known = "; ".join(f"layout={a}, input_dtype={b}, normalize={c}" for a, b, c in INPUT_FORMATS)
            raise BadModel(f"{where}: unknown input format layout={fmt[0]!r}, input_dtype={fmt[1]!r}, "
                           f"normalize={fmt[2]!r}; known: {known}")
        if INPUT_FORMATS[fmt] > schema:
            raise BadModel(f"{where}: input format {'/'.join(fmt)} needs spec schema {INPUT_FORMATS[fmt]}, "
                           f"the spec says {schema}")
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
