"""Convert, validate, package: the one pipeline every target goes through.

:func:`convert` builds a target (see :mod:`converters.formats`), runs the source (onnxruntime
fp32) and the result (its own backend) on the validation set, records mAP@0.5, mAP@.5:.95, their
deltas, batch-1 latency and throughput, judges accepted/rejected, and writes the model package
(``manifest.json`` + files; see ``docs/model-package.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from converters.data import ImageSet, load_images
from converters.formats import get_target
from converters.source import Progress, read_source
from converters.validate import DEFAULT_MAX_DROP, evaluate, judge, measure_speed
from detkit.errors import BadInput, Conflict
from detkit.package import PackageManifest, write_package
from detkit.runtime import load

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Progress]  # (description, total) -> update(n)


def _bar(progress: ProgressFactory | None, desc: str, total: int) -> Progress | None:
    return progress(desc, total) if progress else None


def validate_model(
    model: str | Path, backend: str | None, images: ImageSet, *, device: str = "cpu", runs: int = 50,
    progress: ProgressFactory | None = None, label: str = "",
) -> tuple[dict, dict]:
    """``(accuracy, speed)`` of one model file or package on an annotated image set."""
    det = load(model, backend=backend, device=device)
    try:
        acc = evaluate(det, images, _bar(progress, f"evaluate {label or det.backend}", len(images)))
        speed = measure_speed(det, images, runs=runs)
    finally:
        det.close()
    return acc, speed


def convert(
    target: str,
    src: str | Path,
    out_dir: str | Path,
    *,
    calibration: ImageSet | str | Path | None = None,
    validation: ImageSet | str | Path | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    max_calibration: int = 100,
    name: str | None = None,
    version: str = "1",
    device: str = "cpu",
    runs: int = 50,
    progress: ProgressFactory | None = None,
) -> PackageManifest:
    """Build ``target`` from the ONNX detector ``src`` into the package folder ``out_dir``.

    With ``validation`` (annotated folder/zip) the package records accuracy and speed of source and
    result and is ``accepted`` or ``rejected`` (mAP@0.5 drop over ``max_drop`` points); without it
    the status is ``unvalidated``. At most ``max_calibration`` calibration images are used. Raises :class:`BadInput`/:class:`BadModel` naming the bad file.
    """
    row = get_target(target)
    source = read_source(src)
    classes = source.spec.class_names
    val = None
    if validation is not None:
        val = validation if isinstance(validation, ImageSet) else load_images(validation, need_annotations=True)
        val.check_classes(classes)
    cal = None
    if row.needs_calibration:
        if calibration is None:
            raise BadInput(f"target {target} needs calibration images (a folder or zip)")
        cal = calibration if isinstance(calibration, ImageSet) else load_images(calibration)
        if cal.annotated:
            cal.check_classes(classes)
        cal = cal.take(max_calibration)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise Conflict(f"{out_dir}: output folder exists and is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_rel, extra = row.build(source.path, out_dir, cal, _bar(progress, "calibrate", len(cal)) if cal else None)
    fields: dict = {"backend": row.backend, "precision": row.precision, "source_sha256": source.sha256}
    if val is not None:
        src_acc, src_speed = validate_model(source.path, "onnxruntime", val, runs=runs, progress=progress, label="source")
        res_acc, res_speed = validate_model(out_dir / model_rel, row.backend, val, device=device, runs=runs,
                                            progress=progress, label=target)
        status, reason, deltas = judge(src_acc, res_acc, max_drop)
        fields["accuracy"] = {
            "dataset": str(val.source), "images": len(val), "mAP50": res_acc["mAP50"],
            "mAP50_95": res_acc["mAP50_95"], **deltas, "max_drop": max_drop, "per_class": res_acc["per_class"],
            "source": {"mAP50": src_acc["mAP50"], "mAP50_95": src_acc["mAP50_95"]},
        }
        fields["speed"] = {
            **res_speed,
            "speedup_vs_source": round(src_speed["latency_ms_p50"] / max(res_speed["latency_ms_p50"], 1e-9), 3),
            "source": {k: src_speed[k] for k in ("latency_ms_p50", "latency_ms_p95", "images_per_s")},
        }
        fields["status"], fields["reason"] = status, reason
        log.info("%s: %s (%s)", target, status, reason)
    spec = source.spec.with_graph_input() if row.uint8_input else source.spec
    manifest = write_package(
        out_dir, name=name or source.path.stem, version=version, spec=spec, model=model_rel,
        files=extra, **fields,
    )
    return manifest
