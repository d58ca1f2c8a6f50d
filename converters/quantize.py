"""int8 ONNX through onnxruntime static quantization (QDQ, per-channel weights).

Calibration images are letterboxed and normalised exactly as at inference; ``quant_pre_process``
(shape inference + graph optimisation) runs first, as onnxruntime recommends; the detection head's
output nodes stay in float (see :func:`converters.source.head_nodes`). The result keeps the
source's ``ymir.spec`` metadata, so it is served like the fp32 model.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from converters.data import ImageSet, load_images
from converters.source import Progress, head_nodes, input_batches, read_source, set_spec_metadata
from detkit.errors import BadInput, BadModel
from detkit.manifest import METADATA_KEY

log = logging.getLogger(__name__)

ACTIVATION_TYPES = ("uint8", "int8")


def quantize_onnx(
    src: str | Path,
    out: str | Path,
    calibration: ImageSet | str | Path,
    *,
    max_images: int = 100,
    per_channel: bool = True,
    activation_type: str = "uint8",
    method: str = "minmax",
    exclude_head: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Write the int8 QDQ version of the ONNX detector ``src`` to ``out``; returns ``out``.

    ``calibration``: an :class:`ImageSet` or a folder/zip of images (up to ``max_images`` used).
    ``activation_type`` ``uint8`` (U8S8, the fast path on x86) or ``int8``; ``method`` ``minmax``
    or ``percentile`` (clips activation outliers). Raises :class:`BadModel`/:class:`BadInput`
    naming the file at fault.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = read_source(src)
    if source.is_qdq:
        raise BadModel(f"{source.path}: already quantized (has QuantizeLinear nodes)")
    if activation_type not in ACTIVATION_TYPES:
        raise BadInput(f"activation_type must be one of {ACTIVATION_TYPES}, got {activation_type!r}")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise BadInput(f"calibration method must be one of {sorted(methods)}, got {method!r}")
    images = calibration if isinstance(calibration, ImageSet) else load_images(calibration)
    if len(images) == 0:
        raise BadInput(f"{images.source}: calibration set is empty")
    if images.annotated:
        images.check_classes(source.spec.class_names)
    images = images.take(max_images)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = input_batches(images, source.spec, progress=progress)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {source.spec.input_name: batch}

    with tempfile.TemporaryDirectory(prefix="ymir-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ONNX shape inference only: onnxruntime's symbolic one (meant for transformers) fails on the
        # detector's Resize with a dynamic batch, and on failure it dumps sym_shape_infer_temp.onnx and
        # uuid-named .data files into the working directory.
        quant_pre_process(str(source.path), str(pre), skip_symbolic_shape=True)
        pre_model = onnx.load(str(pre))
        outputs = list(source.spec.outputs.values())
        exclude = head_nodes(pre_model, outputs) if exclude_head else []
        log.info("quantizing %s: %d calibration images, %d head nodes kept in float: %s",
                 source.path, len(images), len(exclude), ", ".join(exclude))
        act = QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8
        quantize_static(
            str(pre), str(out), Reader(),
            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=act,
            weight_type=QuantType.QInt8, nodes_to_exclude=exclude, calibrate_method=methods[method],
        )
    model = onnx.load(str(out))
    if {p.key: p.value for p in model.metadata_props}.get(METADATA_KEY) != source.spec.to_json():
        set_spec_metadata(model, source.spec.to_json())
        onnx.save(model, str(out))
    return out
