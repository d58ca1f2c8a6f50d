"""Training, inference and mining as executor jobs: submit (validated), prepare ``/in``, finish ``/out``.

* ``train``: a training and a validation version → a model with its stages (files copied under
  ``models/job-<job id>/``), metrics and per-epoch history.
* ``infer``: a model stage × one dataset version → a new prediction version (same images and GT,
  predictions from the model), ready for diagnosis. Several models × several versions = one job each.
* ``mine``: a model stage × candidate version → scores per image (highest = most worth labeling).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput
from hub.jobs import contract
from hub.jobs.base import ExecutorImage
from hub.jobs.contract import InputSet, Item
from hub.jobs.kinds import ExecutorKind, JobContext, PreparedRun, register
from hub.store import assets as assets_store
from hub.store import classes as classes_store
from hub.store import datasets as datasets_store
from hub.store import executor_images as images_store
from hub.store import jobs as jobs_store
from hub.store import models as models_store
from hub.store import predictions as predictions_store

BUILTIN_IMAGE = "ymir-edge/executor"
BUILTIN_DOCKER_REF = "ymir-edge/executor:latest"
_EXT = {"jpeg": "jpg", "png": "png", "bmp": "bmp"}
_IMG_MAN = Path(__file__).resolve().parent.parent / "executor" / "img-man"


def _read_templates(folder: Path) -> tuple[dict, dict]:
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text()) if (folder / "manifest.yaml").exists() else {}
    templates = {}
    for kind in ("training", "mining", "infer"):
        path = folder / f"{kind}-template.yaml"
        if path.exists():
            templates[kind] = yaml.safe_load(path.read_text()) or {}
    return manifest or {}, templates


def register_builtin_image(database) -> dict:
    """(Re)register the built-in executor: runs as ``python -m executor`` locally, or as its image."""
    manifest, templates = _read_templates(_IMG_MAN)
    return images_store.upsert_image(
        database, name=BUILTIN_IMAGE, docker_ref=BUILTIN_DOCKER_REF, local_command=["{python}", "-m", "executor"],
        description="Built-in CenterNet-style detector (CPU-trainable, CUDA when present)", manifest=manifest,
        templates=templates, builtin=True, is_public=True,
    )


def executor_image(row: dict) -> ExecutorImage:
    command = [sys.executable if part == "{python}" else part for part in row["local_command"]]
    return ExecutorImage(name=row["name"], docker_ref=row["docker_ref"], local_command=command)


def version_items(ctx: JobContext, version_id: int, targets: list[str] | None, with_gt: bool) -> list[Item]:
    """A version's assets as executor items; with ``with_gt`` their GT boxes (only ``targets`` if given)."""
    items = []
    wanted = set(targets or [])
    rows = list(assets_store.iter_version(ctx.database, version_id))
    if ctx.settings is not None:  # the job reads files: fetch what the cache lacks, in parallel
        ctx.settings.asset_store.ensure_local(row["sha1"] for row in rows)
    for row in rows:
        ann = None
        if with_gt:
            ann = ImageAnnotation(filename=row["filename"], width=row["width"], height=row["height"],
                                  tags=row["tags"])
            for b in row["boxes"]:
                if b["kind"] != "gt" or (wanted and b["class"] not in wanted):
                    continue
                ann.boxes.append(Box(b["x1"], b["y1"], b["x2"], b["y2"], b["class"], difficult=b["difficult"],
                                     truncated=b["truncated"], pose=b["pose"], tags=b["tags"]))
        src = ctx.workspace / "assets" / row["sha1"][-2:] / row["sha1"]
        items.append(Item(sha1=row["sha1"], src=src, ext=_EXT.get(row["format"], "jpg"), annotation=ann))
    return items


def _stage_files(ctx: JobContext, model: dict, stage: str | None) -> tuple[str, list[Path]]:
    stage = stage or model["best_stage"]
    for st in model["stages"]:
        if st["name"] == stage:
            folder = ctx.workspace / "models" / model["folder"]
            return stage, [folder / Path(f).name for f in st["files"]]
    raise BadInput(f"model {model['id']} has no stage {stage!r}; stages: {[s['name'] for s in model['stages']]}")


# -- submit ---------------------------------------------------------------------------------------
def _check_image(ctx: JobContext, name: str, backend_key: str, gpu_count: int) -> dict:
    image = images_store.get_image(ctx.database, name)  # NotFound: unknown image
    if backend_key == "local":
        if not image["local_command"]:
            raise BadInput(f"image {name!r} has no local command: it can only run under the docker backend")
        if gpu_count:
            raise BadInput("the local backend cannot assign GPUs (gpu_count must be 0); use the docker backend")
    elif not image["docker_ref"]:
        raise BadInput(f"image {name!r} has no docker reference")
    return image


def submit_training(
    ctx: JobContext, *, project_id: int, train_version_id: int, val_version_id: int, image: str = BUILTIN_IMAGE,
    targets: list[str] | None = None, config: dict | None = None, pretrained_model_id: int | None = None,
    pretrained_stage: str | None = None, gpu_count: int = 0, backend_key: str = "local", name: str | None = None,
    timeout_s: float | None = None, created_by: int | None = None,
) -> dict:
    """Validate everything a user can get wrong, then queue a ``train`` job."""
    _check_image(ctx, image, backend_key, gpu_count)
    train = datasets_store.require_ready(ctx.database, train_version_id)
    val = datasets_store.require_ready(ctx.database, val_version_id)
    for v in (train, val):
        if v["project_id"] != project_id:
            raise BadInput(f"dataset version {v['id']} belongs to another project")
    present = sorted(datasets_store.class_counts(ctx.database, train_version_id).get("gt", {}))
    if not present:
        raise BadInput(f"training version {train_version_id} has no ground-truth boxes")
    if targets:
        targets = [classes_store.get_class(ctx.database, t)["name"] for t in targets]
        missing = [t for t in targets if t not in present]
        if missing:
            raise BadInput(f"targets not in the training set: {', '.join(missing)} (present: {', '.join(present)})")
    else:
        targets = present
    if pretrained_model_id is not None:
        pre = models_store.get_model(ctx.database, pretrained_model_id)
        if pre["image"] != image:
            raise BadInput(f"pretrained model {pretrained_model_id} was trained with image {pre['image']!r}, "
                           f"not {image!r}: only models of the same image can be fine-tuned")
        _stage_files(ctx, pre, pretrained_stage)
    params = dict(train_version_id=train_version_id, val_version_id=val_version_id, image=image, targets=targets,
                  config=config or {}, pretrained_model_id=pretrained_model_id, pretrained_stage=pretrained_stage,
                  name=name or train.get("group_name") or "model")
    return jobs_store.create_job(ctx.database, kind="train", category="executor", params=params,
                                 project_id=project_id, image=image, gpu_count=gpu_count, timeout_s=timeout_s,
                                 created_by=created_by)


def submit_inference(
    ctx: JobContext, *, model_id: int, version_ids: list[int], stage: str | None = None, config: dict | None = None,
    mode: str = "infer", backend_key: str = "local", created_by: int | None = None,
) -> list[dict]:
    """Queue one ``infer`` (or ``mine``) job per dataset version for a model stage."""
    if mode not in ("infer", "mine"):
        raise BadInput(f"mode must be infer or mine, got {mode!r}")
    model = models_store.get_model(ctx.database, model_id)
    stage, _ = _stage_files(ctx, model, stage)
    _check_image(ctx, model["image"], backend_key, 0)
    jobs = []
    for vid in version_ids:
        version = datasets_store.require_ready(ctx.database, vid)
        params = dict(model_id=model_id, stage=stage, version_id=vid, config=config or {})
        jobs.append(jobs_store.create_job(ctx.database, kind=mode, category="executor", params=params,
                                          project_id=version["project_id"], image=model["image"],
                                          created_by=created_by))
    return jobs


# -- prepare / finish -----------------------------------------------------------------------------
def _template(image_row: dict, kind: str) -> dict:
    return dict(image_row["templates"].get(kind) or {})


def _prepare_train(ctx: JobContext, job: dict) -> PreparedRun:
    p = job["params"]
    image_row = images_store.get_image(ctx.database, p["image"])
    config = _template(image_row, "training")
    config.update(p["config"])
    config.update(class_names=p["targets"], gpu_count=job["gpu_count"] or 0,
                  gpu_id=",".join(str(i) for i in range(job["gpu_count"] or 0)))
    models = []
    if p.get("pretrained_model_id"):
        pre = models_store.get_model(ctx.database, p["pretrained_model_id"])
        _, models = _stage_files(ctx, pre, p.get("pretrained_stage"))
    inputs = InputSet(training=version_items(ctx, p["train_version_id"], p["targets"], True),
                      validation=version_items(ctx, p["val_version_id"], p["targets"], True), models=models)
    return PreparedRun(image=executor_image(image_row), config=config, inputs=inputs, training=True)


def _finish_train(ctx: JobContext, job: dict, out_dir: Path) -> dict:
    p = job["params"]
    result = contract.read_training_result(out_dir)
    folder = f"job-{job['id']}"
    dst = ctx.workspace / "models" / folder
    dst.mkdir(parents=True, exist_ok=True)
    for stage in result.stages:
        for f in stage.files:
            src = out_dir / "models" / Path(f).name
            if not (dst / src.name).exists():
                shutil.copyfile(src, dst / src.name)
    history = []
    hist_path = out_dir / "models" / "history.json"
    if hist_path.exists():
        try:
            history = json.loads(hist_path.read_text())
        except ValueError:
            history = []
    model = models_store.create_model(
        ctx.database, project_id=job["project_id"], name=p["name"], image=p["image"], source="trained",
        class_names=p["targets"], best_stage=result.best_stage, job_id=job["id"],
        train_version_id=p["train_version_id"], val_version_id=p["val_version_id"],
        folder=folder, config=p["config"], history=history,
        stages=[{"name": s.name, "files": [Path(f).name for f in s.files], "metrics": s.metrics,
                 "timestamp": s.timestamp} for s in result.stages],
    )
    best = next(s for s in result.stages if s.name == result.best_stage)
    return {"model_id": model["id"], "best_stage": result.best_stage, "metrics": best.metrics}


def _prepare_predict(kind: str):
    def prepare(ctx: JobContext, job: dict) -> PreparedRun:
        p = job["params"]
        model = models_store.get_model(ctx.database, p["model_id"])
        image_row = images_store.get_image(ctx.database, model["image"])
        config = _template(image_row, "infer" if kind == "infer" else "mining")
        config.update(p["config"])
        config.update(class_names=model["class_names"], gpu_count=0, gpu_id="")
        _, files = _stage_files(ctx, model, p["stage"])
        inputs = InputSet(candidates=version_items(ctx, p["version_id"], None, False), models=files)
        return PreparedRun(image=executor_image(image_row), config=config, inputs=inputs,
                           mining=kind == "mine", infer=kind == "infer")

    return prepare


def _finish_infer(ctx: JobContext, job: dict, out_dir: Path) -> dict:
    p = job["params"]
    preds = contract.read_infer_result(out_dir)
    model = models_store.get_model(ctx.database, p["model_id"])
    ids = classes_store.ids_by_main_name(ctx.database)
    names = classes_store.name_map(ctx.database)
    rows, unknown = [], set()
    for sha1, ann in preds.items():
        for b in ann.boxes:
            main = names.get(b.name.strip().lower())
            if main is None:
                unknown.add(b.name)
                continue
            rows.append((sha1, ids[main], b.x1, b.y1, b.x2, b.y2, b.confidence))
    if unknown:
        raise BadInput(f"executor predicted classes the hub does not know: {', '.join(sorted(unknown))}")
    src = datasets_store.get_version(ctx.database, p["version_id"])
    version = datasets_store.create_version(
        ctx.database, src["group_id"], operation="infer", parent_ids=[src["id"]],
        source={"kind": "infer", "model_id": model["id"], "model": f"{model['name']} v{model['version']}",
                "stage": p["stage"], "job_id": job["id"]},
        note=f"predictions of model {model['id']} ({p['stage']})", created_by=job.get("created_by"),
    )
    report = {"images": len(preds), "pred_boxes": len(rows), "model_id": model["id"], "stage": p["stage"]}
    with ctx.database.write() as db:
        predictions_store.fill_prediction_version(db, src_version_id=src["id"], dst_version_id=version["id"],
                                                  rows=rows, report=report)
    return {"version_id": version["id"], "pred_boxes": len(rows)}


def _finish_mine(ctx: JobContext, job: dict, out_dir: Path) -> dict:
    scores = [(contract.asset_key(a), s) for a, s in contract.read_mining_result(out_dir)]
    return {"scores": scores[:100_000], "count": len(scores)}


register("train", ExecutorKind(prepare=_prepare_train, finish=_finish_train))
register("infer", ExecutorKind(prepare=_prepare_predict("infer"), finish=_finish_infer))
register("mine", ExecutorKind(prepare=_prepare_predict("mine"), finish=_finish_mine))


def training_history(database, workspace: Path, job: dict) -> list[dict]:
    """Per-epoch history of a training job: the model's once done, the executor's file while it runs."""
    model = models_store.model_for_job(database, job["id"])
    if model is not None:
        return model["history"]
    path = workspace / "jobs" / job["id"] / "out" / "models" / "history.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []

