"""Model stage → packages for edge targets (int8 ONNX, OpenVINO fp32/fp16/int8, TensorRT), as a job.

A ``convert`` internal job builds every chosen target with :func:`converters.package.convert`,
validates source and result on a dataset version (mAP@0.5, mAP@.5:.95, deltas, latency,
throughput; rejected when mAP@0.5 drops more than ``max_drop`` points), packs each package as one
zip kept under ``artifacts/<sha256>.zip`` (where devices download it from) and lists it on the
model. Calibration images come from the model's training version unless another is given.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from detkit.errors import BadInput, BadModel
from detkit.io.voc import to_voc
from hub.jobs.contract import Item
from hub.jobs.kinds import InternalKind, JobContext, register
from hub.store import datasets as datasets_store
from hub.store import jobs as jobs_store
from hub.store import model_packages as packages_store
from hub.store import models as models_store

DEFAULT_TARGETS = ("onnx-int8", "openvino-int8")


def _targets(targets: list[str]) -> list[str]:
    from converters.formats import TARGETS

    if not targets:
        raise BadInput("choose at least one target")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise BadInput(f"unknown conversion target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return list(dict.fromkeys(targets))


def stage_onnx(workspace: Path, model: dict, stage: str | None) -> tuple[str, Path]:
    stage = stage or model["best_stage"]
    st = next((s for s in model["stages"] if s["name"] == stage), None)
    if st is None:
        raise BadInput(f"model {model['id']} has no stage {stage!r}; stages: {[s['name'] for s in model['stages']]}")
    onnx = [workspace / "models" / model["folder"] / Path(f).name for f in st["files"] if str(f).endswith(".onnx")]
    if not onnx or not onnx[0].is_file():
        raise BadModel(f"model {model['id']} stage {stage!r} has no .onnx file to convert")
    return stage, onnx[0]


def submit_conversion(ctx: JobContext, *, model_id: int, targets: list[str], stage: str | None = None,
                      val_version_id: int | None = None, calib_version_id: int | None = None,
                      max_drop: float = 2.0, created_by: int | None = None) -> dict:
    """Validate the request, then queue a ``convert`` job."""
    model = models_store.get_model(ctx.database, model_id)
    stage, _ = stage_onnx(ctx.workspace, model, stage)
    targets = _targets(targets)
    val_version_id = val_version_id or model["val_version_id"]
    calib_version_id = calib_version_id or model["train_version_id"] or val_version_id
    if val_version_id is None:
        raise BadInput(f"model {model_id} has no validation version: give one to measure the packages")
    for vid in (val_version_id, calib_version_id):
        datasets_store.require_ready(ctx.database, vid)
    if not 0 <= max_drop <= 100:
        raise BadInput(f"max_drop must be between 0 and 100 points, got {max_drop}")
    params = dict(model_id=model_id, stage=stage, targets=targets, val_version_id=val_version_id,
                  calib_version_id=calib_version_id, max_drop=max_drop)
    return jobs_store.create_job(ctx.database, kind="convert", category="internal", params=params,
                                 project_id=model["project_id"], created_by=created_by,
                                 message=f"convert {model['name']} v{model['version']} → {', '.join(targets)}")


def write_image_folder(items: list[Item], folder: Path, limit: int | None = None) -> Path:
    """``images/`` (hard links to the stored assets) and ``gt/`` VOC XML: what converters load."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(exist_ok=True)
    for item in items[:limit] if limit else items:
        dst = folder / "images" / f"{item.sha1}.{item.ext}"
        try:
            os.link(item.src, dst)
        except OSError:
            shutil.copyfile(item.src, dst)
        if item.annotation is not None:
            (folder / "gt" / f"{item.sha1}.xml").write_bytes(to_voc(item.annotation))
    return folder


def _run_convert(ctx: JobContext, job: dict, progress) -> dict:
    from converters.package import convert
    from detkit.package import pack
    from hub.fleet.algorithms import store_artifact
    from hub.training import version_items

    p = job["params"]
    model = models_store.get_model(ctx.database, p["model_id"])
    stage, onnx = stage_onnx(ctx.workspace, model, p["stage"])
    targets = p["targets"]
    done_share = [0.0]

    def factory(desc: str, total: int):
        seen = [0]
        base = done_share[0]

        def update(n: int = 1) -> None:
            seen[0] += n
            frac = base + (seen[0] / max(total, 1)) / len(targets) / 3
            progress(min(frac, 0.99), f"{desc} {seen[0]}/{total}")

        return update

    tmp_root = ctx.workspace / "cache" / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    made, rejected = [], []
    with tempfile.TemporaryDirectory(prefix=f"convert-{job['id']}-", dir=tmp_root) as tmp:
        tmp = Path(tmp)
        val = write_image_folder(version_items(ctx, p["val_version_id"], model["class_names"], True), tmp / "val")
        calib = write_image_folder(version_items(ctx, p["calib_version_id"], model["class_names"], True),
                                   tmp / "calib", limit=200)
        for i, target in enumerate(targets):
            done_share[0] = i / len(targets)
            progress(done_share[0], f"building {target}")
            out = tmp / f"pkg-{target}"
            manifest = convert(target, onnx, out, calibration=calib, validation=val, max_drop=p["max_drop"],
                               name=f"{model['name']}", version=f"{model['version']}-{stage}-{target}",
                               progress=factory)
            zip_path = pack(out, tmp / f"{target}.zip")
            sha, size = store_artifact(ctx.database, ctx.settings, zip_path)
            row = packages_store.add_package(
                ctx.database, model_id=model["id"], stage=stage, target=target, backend=manifest.backend,
                precision=manifest.precision, sha256=sha, size_bytes=size, status=manifest.status,
                reason=manifest.reason, accuracy=manifest.accuracy, speed=manifest.speed, job_id=job["id"],
            )
            (rejected if manifest.status == "rejected" else made).append(row["id"])
    progress(1.0, "done")
    return {"model_id": model["id"], "packages": made + rejected, "rejected": rejected, "finished": time.time()}


register("convert", InternalKind(run=_run_convert))
