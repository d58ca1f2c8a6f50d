"""Open Inference Protocol (KServe v2 REST) tensors, with Triton's binary tensor data extension.

:func:`parse_infer_request` turns a request body into ``{name: ndarray}`` plus what the client
asked of the outputs; :func:`encode_infer_response` builds the response body and headers. With
the extension, a body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by
the raw little-endian tensors of inputs that declare ``parameters.binary_data_size``, in order;
outputs asked for with ``binary_data`` (per output) or ``binary_data_output`` (request) come back
the same way, each with ``parameters.binary_data_size``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from detkit.errors import BadInput

HEADER = "Inference-Header-Content-Length"
DATATYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
_BY_DTYPE = {np.dtype(v).str.lstrip("<|=>"): k for k, v in DATATYPES.items()}


def datatype_of(arr: np.ndarray) -> str:
    """OIP datatype name of a numpy array (``FP32`` ...)."""
    try:
        return _BY_DTYPE[arr.dtype.str.lstrip("<|=>")]
    except KeyError:
        raise BadInput(f"output datatype {arr.dtype} has no Open Inference Protocol equivalent") from None


@dataclass
class InferRequest:
    """A parsed ``/infer`` request."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[str] | None = None  # requested output names (None: all)
    binary: dict[str, bool] = field(default_factory=dict)  # per requested output
    binary_default: bool = False  # request-level binary_data_output


def _shape(value, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in value):
        raise BadInput(f"{where}: shape must be a list of non-negative integers")
    return tuple(value)


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse JSON (optionally followed by binary tensors) into numpy inputs; :class:`BadInput` on error."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise BadInput(f"{HEADER} must be an integer, got {header_length!r}") from None
        if not 0 < n <= len(body):
            raise BadInput(f"{HEADER} {n} is outside the body length {len(body)}")
        head, rest = body[:n], memoryview(body)[n:]
    else:
        head, rest = body, memoryview(b"")
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"request is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadInput("request must be a JSON object with a non-empty 'inputs' list")
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    for i, item in enumerate(doc["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadInput(f"{where}: needs a 'name'")
        where = f"input {item['name']!r}"
        dtype_name = item.get("datatype")
        if dtype_name not in DATATYPES:
            raise BadInput(f"{where}: datatype {dtype_name!r} is not supported ({', '.join(DATATYPES)})")
        dtype = np.dtype(DATATYPES[dtype_name]).newbyteorder("<")
        shape = _shape(item.get("shape"), where)
        count = int(np.prod(shape, dtype=np.int64))
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadInput(f"{where}: parameters must be an object")
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadInput(f"{where}: binary_data_size must be a non-negative integer")
            if size != count * dtype.itemsize:
                raise BadInput(f"{where}: binary_data_size {size} != {count} x {dtype.itemsize} bytes for shape {list(shape)}")
            if offset + size > len(rest):
                raise BadInput(f"{where}: body holds {len(rest) - offset} bytes of binary data, {size} declared")
            arr = np.frombuffer(rest[offset: offset + size], dtype=dtype).reshape(shape)
            offset += size
        else:
            data = item.get("data")
            if data is None:
                raise BadInput(f"{where}: needs 'data' or parameters.binary_data_size")
            try:
                arr = np.asarray(data, dtype=dtype)
            except (ValueError, TypeError, OverflowError) as exc:
                raise BadInput(f"{where}: data does not fit {dtype_name} ({exc})") from None
            if arr.size != count:
                raise BadInput(f"{where}: {arr.size} values for shape {list(shape)} ({count} expected)")
            arr = arr.reshape(shape)
        if item["name"] in inputs:
            raise BadInput(f"{where}: given twice")
        inputs[item["name"]] = arr
    if offset != len(rest):
        raise BadInput(f"body has {len(rest) - offset} bytes of binary data no input declared")
    req = InferRequest(inputs=inputs)
    if doc.get("id") is not None:
        req.id = str(doc["id"])
    params = doc.get("parameters") or {}
    if isinstance(params, dict):
        req.binary_default = bool(params.get("binary_data_output", False))
    outs = doc.get("outputs")
    if outs is not None:
        if not isinstance(outs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outs):
            raise BadInput("'outputs' must be a list of objects with a 'name'")
        req.outputs = [o["name"] for o in outs]
        for o in outs:
            p = o.get("parameters") or {}
            if isinstance(p, dict) and "binary_data" in p:
                req.binary[o["name"]] = bool(p["binary_data"])
    return req


def encode_infer_response(
    model_name: str, model_version: str, outputs: dict[str, np.ndarray], req: InferRequest
) -> tuple[bytes, dict[str, str]]:
    """Response body and headers (``Inference-Header-Content-Length`` when any output is binary)."""
    names = req.outputs if req.outputs is not None else list(outputs)
    unknown = [n for n in names if n not in outputs]
    if unknown:
        raise BadInput(f"unknown outputs {unknown}; the model has {sorted(outputs)}")
    items, blobs = [], []
    for name in names:
        arr = outputs[name]
        dtype = datatype_of(arr)
        item = {"name": name, "datatype": dtype, "shape": list(arr.shape)}
        if req.binary.get(name, req.binary_default):
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            item["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            item["data"] = arr.reshape(-1).tolist()
        items.append(item)
    doc = {"model_name": model_name, "model_version": model_version, "outputs": items}
    if req.id is not None:
        doc["id"] = req.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return b"".join([head, *blobs]), {"Content-Type": "application/octet-stream", HEADER: str(len(head))}
