"""Diagnosis and dataset analysis: evaluations (cached), box labels, comparisons, analyses, their jobs."""

from __future__ import annotations

from flask import g, jsonify, request

from detkit.errors import BadInput
from hub import analysis, diagnosis
from hub.api import bp
from hub.api.util import body, check_int, database, get_field, query_int, state
from hub.store import datasets as ds_store
from hub.store import jobs as jobs_store


def _opt_int(raw, name: str) -> int | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, bool):
        raise BadInput(f"{name}: expected an integer")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadInput(f"{name}: expected an integer, got {raw!r}") from None
    return check_int(value, name)


def _int_list(raw, name: str) -> list[int]:
    """Ids from ``1,2,3`` or a JSON list."""
    if raw in (None, ""):
        return []
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise BadInput(f"{name}: expected a list of ids")
    return [_opt_int(x.strip() if isinstance(x, str) else x, name) for x in items if str(x).strip()]


def _flag(raw) -> bool:
    return raw is True or str(raw).lower() in ("1", "true", "yes")


@bp.get("/versions/<int:version_id>/evaluation")
def version_evaluation(version_id: int):
    a = request.args
    res = diagnosis.evaluate(database(), version_id, _opt_int(a.get("gt"), "gt"), a.get("iou"), a.get("conf"),
                             refresh=_flag(a.get("refresh")))
    return jsonify(res)


@bp.post("/evaluations")
def create_evaluation():
    data = body()
    pred = get_field(data, "pred_version_id", int, required=True)
    gt = get_field(data, "gt_version_id", int)
    iou, conf = get_field(data, "iou", float), get_field(data, "conf", float)
    if _flag(data.get("background")):
        diagnosis.check_params(iou, conf)
        gv, pv = diagnosis.check_pair(database(), gt, pred)
        job = jobs_store.create_job(
            database(), kind="evaluate", category="internal", project_id=pv["project_id"],
            params={"pred_version_id": pv["id"], "gt_version_id": gv["id"], "iou": iou, "conf": conf},
            created_by=g.user["id"],
        )
        return jsonify({"job": job, "poll": f"/api/v1/jobs/{job['id']}"}), 202
    return jsonify(diagnosis.evaluate(database(), pred, gt, iou, conf, refresh=_flag(data.get("refresh"))))


@bp.get("/diagnosis")
def compare_evaluations():
    """Several prediction versions (or models on test sets) evaluated with the same parameters."""
    a = request.args
    preds = _int_list(a.get("pred"), "pred")
    models, tests = _int_list(a.get("models"), "models"), _int_list(a.get("test"), "test")
    if models and not tests:
        raise BadInput("models: also give the test set(s) with test=ID[,ID]")
    preds += [diagnosis.resolve_model(database(), m, t) for m in models for t in tests]
    if not preds:
        raise BadInput("give prediction versions (pred=ID,ID) or models and test sets (models=ID&test=ID)")
    if len(preds) > 8:
        raise BadInput(f"at most 8 evaluations side by side, got {len(preds)}")
    gt = _opt_int(a.get("gt"), "gt")
    out = [diagnosis.evaluate(database(), p, gt, a.get("iou"), a.get("conf")) for p in preds]
    return jsonify({"evaluations": out})


@bp.get("/versions/<int:version_id>/labels")
def version_labels(version_id: int):
    a = request.args
    page = diagnosis.label_page(
        database(), version_id, _opt_int(a.get("gt"), "gt"), a.get("iou"), a.get("conf"),
        label=a.get("label"), class_name=a.get("class") or None,
        offset=query_int("offset", 0), limit=query_int("limit", 24, minimum=1, maximum=1000),
    )
    return jsonify(page)


@bp.get("/versions/<int:version_id>/analysis")
def version_analysis(version_id: int):
    return jsonify(analysis.analyze(database(), version_id, refresh=_flag(request.args.get("refresh")),
                                    assets_dir=state().settings.assets_dir,
                                    asset_store=state().settings.asset_store))


@bp.post("/versions/<int:version_id>/analysis")
def start_analysis(version_id: int):
    """Analyse in the background (big versions): 202 with the job to poll."""
    v = ds_store.require_ready(database(), version_id)
    job = jobs_store.create_job(database(), kind="analyze", category="internal", project_id=v["project_id"],
                                params={"version_id": version_id}, created_by=g.user["id"])
    return jsonify({"job": job, "poll": f"/api/v1/jobs/{job['id']}"}), 202


@bp.get("/analysis")
def compare_analyses():
    ids = _int_list(request.args.get("versions"), "versions")
    return jsonify(analysis.compare(database(), ids, assets_dir=state().settings.assets_dir,
                                    asset_store=state().settings.asset_store))
