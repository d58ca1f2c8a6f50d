"""Mining jobs: a model (+ stage) scores the images of dataset version(s); the top-k become a new version.

The job runs the model's mining image under the YMIR executor contract (``run_mining``, and ``run_infer`` too
when the model's predictions are wanted as pre-annotations or for the class-balanced re-ranking): the image
writes ``result.tsv`` (asset, score) and ``infer-result.json``; the hub keeps the ``topk`` highest (re-ranked
by :func:`detkit.scoring.class_balanced_rerank` on request) as a version whose assets carry the tags
``mining_score`` and ``mining_rank`` and, optionally, the predictions as ``pred`` boxes tagged
``source=prediction``. Which image mines: the one linked to the model's training image as its mining image
(``ymir-hub image link-mining``), else the training image itself; it must declare mining (a mining template).
"""

from __future__ import annotations

from pathlib import Path

from detkit import scoring
from detkit.errors import BadInput
from hub.jobs import contract
from hub.jobs.contract import InputSet
from hub.jobs.kinds import ExecutorKind, JobContext, PreparedRun, register
from hub.store import classes as classes_store
from hub.store import datasets as datasets_store
from hub.store import executor_images as images_store
from hub.store import jobs as jobs_store
from hub.store import mining as mining_store
from hub.store import models as models_store
from hub.store import projects as projects_store

KIND = "mining"


def mining_image(database, model: dict) -> dict:
    """The executor image that mines with ``model`` (its linked mining image, else its own); must declare mining."""
    image = images_store.get_image(database, model["image"])
    if image.get("mining_image_id"):
        image = images_store.get_image(database, image["mining_image_id"])
    if "mining" not in (image.get("templates") or {}):
        raise BadInput(f"executor image {image['name']!r} does not declare mining (no mining template); "
                       "link a mining image to it (ymir-hub image link-mining) or train with one that mines")
    return image


def pool_members(database, version_ids: list[int]) -> list[tuple[str, int]]:
    """``(sha1, version)`` of the candidate pool: each asset once, from the first version holding it."""
    seen: set[str] = set()
    out = []
    for sha1, vid in mining_store.version_members(database, version_ids):
        if sha1 not in seen:
            seen.add(sha1)
            out.append((sha1, vid))
    return out


def submit_mining(
    ctx: JobContext, *, model_id: int, version_ids: list[int], topk: int, stage: str | None = None,
    algorithm: str = scoring.DEFAULT_ALGORITHM, class_balanced: bool = False, pre_annotations: bool = True,
    config: dict | None = None, name: str | None = None, backend_key: str = "local",
    created_by: int | None = None, project_id: int | None = None,
) -> dict:
    """Validate what a user can get wrong (each a BadInput naming it), then queue a ``mining`` job."""
    from hub.training import _check_image, _stage_files

    model = models_store.get_model(ctx.database, model_id)
    stage, _ = _stage_files(ctx, model, stage)
    image = mining_image(ctx.database, model)
    _check_image(ctx, image["name"], backend_key, 0)
    try:
        algorithm = scoring.algorithm(algorithm).name
    except scoring.ScoringInputError as exc:
        raise BadInput(str(exc)) from None
    if not version_ids:
        raise BadInput("mining: give at least one dataset version to mine")
    versions = [datasets_store.require_ready(ctx.database, v) for v in version_ids]
    if project_id is None:
        project_id = versions[0]["project_id"]
    for v in versions:
        if v["project_id"] != project_id:
            raise BadInput(f"mining: dataset version {v['id']} belongs to another project")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise BadInput(f"mining: topk must be a positive integer, got {topk!r}")
    pool = len(pool_members(ctx.database, list(version_ids)))
    if topk > pool:
        raise BadInput(f"mining: top-k {topk} is larger than the pool: versions {', '.join(map(str, version_ids))} "
                       f"hold {pool} image(s)")
    targets = projects_store.get_project(ctx.database, project_id)["targets"]
    missing = [t for t in targets if t not in model["class_names"]]
    if missing:
        raise BadInput(f"model {model_id} does not detect the project's target classes {', '.join(missing)} "
                       f"(it detects {', '.join(model['class_names']) or 'nothing'}): mine with a model trained on "
                       "the project's targets")
    params = dict(model_id=model_id, stage=stage, version_ids=list(version_ids), algorithm=algorithm, topk=topk,
                  class_balanced=bool(class_balanced), pre_annotations=bool(pre_annotations),
                  config=config or {}, name=name or "mined", mining_image=image["name"], pool=pool)
    return jobs_store.create_job(ctx.database, kind=KIND, category="executor", params=params,
                                 project_id=project_id, image=image["name"], created_by=created_by)


def _wants_predictions(p: dict) -> bool:
    return bool(p["pre_annotations"] or p["class_balanced"])


def _prepare(ctx: JobContext, job: dict) -> PreparedRun:
    from hub.training import _stage_files, _template, executor_image, version_items

    p = job["params"]
    model = models_store.get_model(ctx.database, p["model_id"])
    image_row = images_store.get_image(ctx.database, p["mining_image"])
    config = _template(image_row, "infer") if _wants_predictions(p) else {}
    config.update(_template(image_row, "mining"))
    config.update(p["config"])
    config.update(class_names=model["class_names"], gpu_count=0, gpu_id="", mining_algorithm=p["algorithm"])
    _, files = _stage_files(ctx, model, p["stage"])
    wanted = dict(pool_members(ctx.database, p["version_ids"]))
    items, seen = [], set()
    for vid in p["version_ids"]:
        for item in version_items(ctx, vid, None, False):
            if wanted.get(item.sha1) == vid and item.sha1 not in seen:
                seen.add(item.sha1)
                items.append(item)
    return PreparedRun(image=executor_image(image_row), config=config, inputs=InputSet(candidates=items, models=files),
                       mining=True, infer=_wants_predictions(p))


def _finish(ctx: JobContext, job: dict, out_dir: Path) -> dict:
    p = job["params"]
    members = pool_members(ctx.database, p["version_ids"])
    source = dict(members)
    scores: dict[str, float] = {}
    for asset, score in contract.read_mining_result(out_dir):
        sha1 = contract.asset_key(asset)
        if sha1 in source and sha1 not in scores:
            scores[sha1] = float(score)
    unscored = [s for s, _ in members if s not in scores]
    preds_by_image: dict[str, list] = {}
    unknown: set[str] = set()
    if _wants_predictions(p):
        ids = classes_store.ids_by_main_name(ctx.database)
        names = classes_store.name_map(ctx.database)
        for sha1, ann in contract.read_infer_result(out_dir).items():
            if sha1 not in source:
                continue
            rows = []
            for b in ann.boxes:
                main = names.get(b.name.strip().lower())
                if main is None:
                    unknown.add(b.name)
                    continue
                rows.append((ids[main], b.x1, b.y1, b.x2, b.y2, b.confidence, main))
            preds_by_image[sha1] = rows
    ranked = sorted(scores, key=lambda s: (-scores[s], s))
    if p["class_balanced"]:
        # only images with a finite, non-negative score take part; the rest follow in score order
        ok = [s for s in ranked if scores[s] >= 0]
        ranked = scoring.class_balanced_rerank(
            ok, [scores[s] for s in ok], [[r[6] for r in preds_by_image.get(s, [])] for s in ok], k=len(ok),
        ) + [s for s in ranked if scores[s] < 0]
    top = ranked[: p["topk"]]
    if len(top) < p["topk"]:
        raise BadInput(f"mining: the executor scored {len(scores)} of {len(members)} images, fewer than top-k "
                       f"{p['topk']}")
    preds = None
    if p["pre_annotations"]:
        preds = [(s, *r[:6]) for s in top for r in preds_by_image.get(s, [])]
    model = models_store.get_model(ctx.database, p["model_id"])
    group = datasets_store.get_or_create_group(ctx.database, job["project_id"], p["name"])
    report = {"operation": "mine", "model_id": model["id"], "stage": p["stage"], "algorithm": p["algorithm"],
              "class_balanced": p["class_balanced"], "topk": p["topk"], "pool": len(members),
              "scored": len(scores), "unscored": len(unscored), "job_id": job["id"],
              "unknown_classes": sorted(unknown), "pred_boxes": len(preds or []),
              "score_range": [scores[top[-1]], scores[top[0]]] if top else None}
    version = datasets_store.create_version(
        ctx.database, group["id"], operation="mine", parent_ids=list(p["version_ids"]),
        source={"kind": "mine", "model_id": model["id"], "model": f"{model['name']} v{model['version']}",
                "stage": p["stage"], "algorithm": p["algorithm"], "topk": p["topk"], "job_id": job["id"]},
        note=f"top {p['topk']} of {len(members)} by {p['algorithm']} (model {model['id']}, {p['stage']})",
        created_by=job.get("created_by"),
    )
    with ctx.database.write() as db:
        mining_store.fill_mined_version(db, version["id"], picks=[(s, source[s]) for s in top], scores=scores,
                                        preds=preds, report=report)
    return {"version_id": version["id"], "topk": len(top), "pool": len(members), "scored": len(scores),
            "algorithm": p["algorithm"], "top": [[s, scores[s]] for s in top[:20]]}


register(KIND, ExecutorKind(prepare=_prepare, finish=_finish))
