"""OpenVINO IR (fp32, fp16 or NNCF int8) from a contract ONNX detector.

``openvino.convert_model`` reads the ONNX; ``save_model`` writes ``model.xml`` + ``model.bin``
(weights compressed to fp16 only for ``fp16``). ``int8`` runs NNCF post-training quantization on
calibration images letterboxed exactly as at inference, leaving the detection head's output
nodes in float. The ModelSpec goes into the IR's ``rt_info`` (``ymir/spec``, read by
:mod:`detkit.runtime.openvino`) and beside it as ``model.spec.json``.

``uint8_input=True`` adds, with ``openvino.preprocess.PrePostProcessor``, an input that takes the
letterboxed uint8 NHWC image and converts, normalises and transposes it inside the graph (spec
schema 2, ``normalize=in_graph``). For int8 that is done after NNCF has quantized the float model on
the usual normalised calibration inputs, so the calibration, and the accuracy, are those of the
plain int8 IR; the added steps sit in front of its first quantize node.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from converters.data import ImageSet, load_images
from converters.source import Progress, head_nodes, input_batches, read_source
from detkit.errors import BadInput, Unavailable
from detkit.runtime.openvino import RT_INFO_PATH, RT_INFO_PRECISION
from detkit.runtime.registry import SIDE_SPEC_SUFFIX

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
MODEL_NAME = "model"


def _sdk():
    try:
        import openvino as ov
    except ImportError as exc:
        raise Unavailable(f"OpenVINO conversion unavailable: pip install 'ymir-edge[openvino]' ({exc})") from None
    return ov


class _CurrentStderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (not the stream of the moment it was made)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except (ValueError, OSError):  # a closed stream: the record is dropped, the conversion goes on
            pass


def _nncf_logs_to_stderr() -> None:
    """NNCF's own handler holds the stdout of the moment NNCF was imported; results (``--json``) own stdout,
    so its records go to the current stderr instead."""
    logger = logging.getLogger("nncf")
    if any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        return
    for handler in list(logger.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
            replacement = _CurrentStderr(handler.level)
            replacement.setFormatter(handler.formatter)
            logger.addHandler(replacement)


def _quantize_int8(ov_model, source, images: ImageSet, max_images: int, progress: Progress | None):
    try:
        import nncf
    except ImportError as exc:
        raise Unavailable(f"OpenVINO int8 needs NNCF: pip install 'ymir-edge[openvino]' ({exc})") from None
    if not log.isEnabledFor(logging.INFO):
        nncf.set_log_level(logging.WARNING)  # NNCF logs INFO lines to stdout by default
    _nncf_logs_to_stderr()
    batches = list(input_batches(images.take(max_images), source.spec, progress=progress))
    # NNCF names IR nodes after the ONNX nodes; keep those that exist in this IR.
    ir_names = {op.get_friendly_name() for op in ov_model.get_ops()}
    ignored = [n for n in head_nodes(source.model, list(source.spec.outputs.values())) if n in ir_names]
    head_types = {"Sigmoid", "SoftPlus", "Exp", "Concat"}
    log.info("NNCF int8: %d calibration images; head nodes kept in float: %s", len(batches), ", ".join(ignored))
    # NNCF draws its progress bars on stdout: keep stdout for results (``--json``), bars on stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.quantize(
            ov_model,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(names=ignored, types=sorted(head_types), validate=False),
        )


def _uint8_input(ov, ov_model, spec):
    """The model behind a uint8 NHWC input: convert to f32, ``(x - 255 mean) / (255 std)``, to NCHW."""
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    entry = ppp.input(spec.input_name)
    entry.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    entry.model().set_layout(ov.Layout("NCHW"))
    (entry.preprocess().convert_element_type(ov.Type.f32)
        .mean([255.0 * m for m in spec.mean]).scale([255.0 * s for s in spec.std]))
    return ppp.build()


def to_openvino(
    src: str | Path,
    out_dir: str | Path,
    precision: str = "fp32",
    calibration: ImageSet | str | Path | None = None,
    *,
    max_images: int = 300,
    progress: Progress | None = None,
    uint8_input: bool = False,
) -> Path:
    """Convert the ONNX detector ``src`` to an IR in ``out_dir``; returns the ``.xml`` path.

    ``precision``: ``fp32``, ``fp16`` (weights compressed) or ``int8`` (needs ``calibration``, a
    folder/zip of images or an :class:`ImageSet`; up to ``max_images`` used). ``uint8_input``: the
    IR takes the letterboxed uint8 NHWC image and normalises it in the graph (spec schema 2).
    """
    if precision not in PRECISIONS:
        raise BadInput(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    source = read_source(src)
    ov = _sdk()
    ov_model = ov.convert_model(str(source.path))
    if precision == "int8":
        if calibration is None:
            raise BadInput("OpenVINO int8 needs calibration images (--calibration folder or zip)")
        images = calibration if isinstance(calibration, ImageSet) else load_images(calibration)
        if images.annotated:
            images.check_classes(source.spec.class_names)
        ov_model = _quantize_int8(ov_model, source, images, max_images, progress)
    spec = source.spec
    if uint8_input:
        ov_model = _uint8_input(ov, ov_model, spec)
        spec = spec.with_graph_input()
    ov_model.set_rt_info(spec.to_json(), RT_INFO_PATH)
    ov_model.set_rt_info(precision, RT_INFO_PRECISION)
    ov_model.set_rt_info(source.sha256, ["ymir", "source_sha256"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    xml = out_dir / f"{MODEL_NAME}.xml"
    ov.save_model(ov_model, str(xml), compress_to_fp16=(precision == "fp16"))
    (out_dir / f"{MODEL_NAME}{SIDE_SPEC_SUFFIX}").write_text(spec.to_json())
    return xml
