"""Pages: Diagnosis (models / prediction versions side by side), the dataset view by box label, analysis."""

from __future__ import annotations

import math

from flask import render_template, request

from detkit.errors import BadInput, YmirError
from hub import analysis, diagnosis
from hub.store import datasets as ds_store
from hub.store import evaluations as eval_store
from hub.store import models as models_store
from hub.store import projects as project_store
from hub.web import bp
from hub.web.util import database, state

PAGE_SIZE = 24
#: box colours on the dataset view, by label
LABEL_COLORS = {"TP": "#1e9e3a", "FP": "#d62728", "FN": "#ff9f1a", "MTP": "#2f6fde", "IGNORED": "#9aa0aa"}


def _ids(name: str) -> list[int]:
    out = []
    for raw in request.args.getlist(name):
        for part in raw.split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise BadInput(f"{name}: expected version or model ids, got {part!r}") from None
    return list(dict.fromkeys(out))


def _opt_int(name: str) -> int | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadInput(f"{name}: expected an id, got {raw!r}") from None


def _chart_data(e: dict, label: str) -> dict:
    return {"label": label, "recall": e["recall_points"], "curves": e["pr_curves"], "sweep": e["f1_sweep"]}


@bp.get("/projects/<int:project_id>/diagnosis")
def diagnosis_page(project_id: int):
    db = database()
    p = project_store.get_project(db, project_id)
    versions = [v for v in ds_store.list_versions(db, project_id=project_id) if v["state"] == "ready"]
    pred_ids = set(eval_store.prediction_version_ids(db, project_id))
    pred_versions = [v for v in versions if v["id"] in pred_ids]
    form = {"pred": _ids("pred"), "models": _ids("models"), "test": _ids("test"), "gt": _opt_int("gt"),
            "iou": request.args.get("iou", ""), "conf": request.args.get("conf", "")}
    evaluations, error, status = [], None, 200
    try:
        chosen = list(form["pred"])
        if form["models"] and not form["test"]:
            raise BadInput("choose the test set(s) the models should be compared on")
        chosen += [diagnosis.resolve_model(db, m, t) for m in form["models"] for t in form["test"]]
        if len(chosen) > 8:
            raise BadInput(f"at most 8 evaluations side by side, got {len(chosen)}")
        for vid in dict.fromkeys(chosen):
            evaluations.append(diagnosis.evaluate(db, vid, form["gt"], form["iou"], form["conf"]))
    except YmirError as exc:
        if exc.status >= 500:
            raise
        error, status, evaluations = exc.message, exc.status, []
    labels = [f"{e['pred_version']['name']}" + (f" · {e['pred_version']['model']}" if e["pred_version"]["model"]
                                                   else "") for e in evaluations]
    classes = list(dict.fromkeys(c for e in evaluations for c in e["per_class"]))
    return render_template(
        "diagnosis.html", project=p, section="diagnosis", versions=versions, pred_versions=pred_versions,
        models=models_store.list_models(db, project_id), form=form, evaluations=evaluations, labels=labels,
        classes=classes, error=error,
        charts=[_chart_data(e, lab) for e, lab in zip(evaluations, labels, strict=True)],
    ), status


@bp.get("/versions/<int:version_id>/diagnosis")
def version_diagnosis(version_id: int):
    """The dataset view of an evaluated prediction version: images filtered by box label and class."""
    db = database()
    v = ds_store.get_version(db, version_id)
    p = project_store.get_project(db, v["project_id"])
    page = max(1, request.args.get("page", 1, type=int) or 1)
    args = {"gt": _opt_int("gt"), "iou": request.args.get("iou", ""), "conf": request.args.get("conf", ""),
            "label": (request.args.get("label") or "").upper(), "class": request.args.get("class") or ""}
    data = diagnosis.label_page(db, version_id, args["gt"], args["iou"], args["conf"], label=args["label"] or None,
                                class_name=args["class"] or None, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    present = sorted(set(v["class_counts"]["gt"]) | set(v["class_counts"]["pred"]))
    return render_template(
        "diagnosis_view.html", project=p, section="diagnosis", v=v, data=data, args=args, page=page,
        pages=max(1, math.ceil(data["total"] / PAGE_SIZE)), present_classes=present, colors=LABEL_COLORS,
        labels=diagnosis.LABELS,
    )


@bp.get("/projects/<int:project_id>/analysis")
def analysis_page(project_id: int):
    db = database()
    p = project_store.get_project(db, project_id)
    versions = [v for v in ds_store.list_versions(db, project_id=project_id) if v["state"] == "ready"]
    chosen = _ids("v")
    if not chosen and versions:
        chosen = [versions[-1]["id"]]
    result, error, status = None, None, 200
    try:
        if chosen:
            result = analysis.compare(db, chosen, assets_dir=state().settings.assets_dir,
                                      asset_store=state().settings.asset_store)
    except YmirError as exc:
        if exc.status >= 500:
            raise
        error, status = exc.message, exc.status
    charts = None
    if result:
        charts = [{"label": a["version"]["name"], "images": a["image_histograms"],
                   "gt": a["gt"]["histograms"], "pred": a["pred"]["histograms"],
                   "proportion": a["gt"]["class_proportion"]} for a in result["versions"]]
    classes = sorted({c for a in (result or {}).get("versions", []) for c in a["gt"]["per_class"]})
    return render_template(
        "analysis.html", project=p, section="analysis", versions=versions, chosen=chosen, result=result,
        error=error, charts=charts, classes=classes, max_compare=analysis.MAX_COMPARE,
    ), status
