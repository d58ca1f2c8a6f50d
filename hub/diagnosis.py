"""Diagnosis: evaluate a prediction version against ground truth, cache the result, label every box.

Two ways to pair ground truth with predictions:

* **one version holding both** (``gt_version_id == pred_version_id``, the default): an inference
  job's output or a ``pred/`` import is a copy of the test set, its GT and predictions side by side;
* **gt version X vs pred version Y**: images matched by asset sha1; only images in both count.

The numbers come from :mod:`detkit.evaluation` on one :class:`~detkit.evaluation.FlatSet` built
straight from SQL columns (no per-box Python): COCO's 12 stats (mAP50, mAP50-95), VOC AP at the
chosen IoU, per-class AP / P / R / F1, PR curves, a confidence sweep and a confusion matrix.
``iou`` sets the IoU of VOC AP, the curves and the box labels; ``conf`` the operating point of
P / R / F1, the labels and the confusion matrix (mAP uses every prediction, as COCO does).

Results are cached per (gt version, pred version, params hash) in ``evaluations`` (versions are
immutable), with each box's label (TP / FP / FN / MTP / IGNORED) in ``evaluation_labels`` for
the dataset view. A repeat request is one SELECT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from detkit.errors import BadInput, NotFound
from detkit.evaluation import confusion_matrix, evaluate_flat, evaluate_voc_flat, f1_sweep, pr_curves
from detkit.evaluation.data import FlatDT, FlatGT, FlatSet
from detkit.evaluation.labels import FN, FP, LABEL_NAMES, TP, label_flat
from hub.jobs.kinds import InternalKind, JobContext, Progress, register
from hub.store import classes as classes_store
from hub.store import datasets as ds_store
from hub.store import evaluations as store

log = logging.getLogger(__name__)

#: bump when the computation changes: old cache rows stop matching
EVAL_VERSION = 1
LABELS = ("TP", "FP", "FN", "MTP", "IGNORED")
DEFAULT_IOU = 0.5
DEFAULT_CONF = 0.25
#: pycocotools' 12 summary numbers, in its order
STAT_NAMES = (
    "AP@[.50:.95] all", "AP@.50 all", "AP@.75 all", "AP@[.50:.95] small", "AP@[.50:.95] medium",
    "AP@[.50:.95] large", "AR@[.50:.95] all 1 det", "AR@[.50:.95] all 10 det", "AR@[.50:.95] all 100 det",
    "AR@[.50:.95] small", "AR@[.50:.95] medium", "AR@[.50:.95] large",
)


@dataclass(frozen=True)
class EvalParams:
    """Checked evaluation parameters."""

    iou: float = DEFAULT_IOU
    conf: float = DEFAULT_CONF

    def key(self) -> str:
        raw = json.dumps({"iou": round(self.iou, 6), "conf": round(self.conf, 6), "v": EVAL_VERSION})
        return hashlib.sha1(raw.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"iou": self.iou, "conf": self.conf}


def check_params(iou=None, conf=None) -> EvalParams:
    """Parameters from user input (numbers or numeric strings); BadInput names the bad one."""

    def number(value, name: str, default: float) -> float:
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise BadInput(f"{name}: expected a number, got {value!r}")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise BadInput(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(x):
            raise BadInput(f"{name}: expected a finite number, got {value!r}")
        return x

    i = number(iou, "iou", DEFAULT_IOU)
    c = number(conf, "conf", DEFAULT_CONF)
    if not 0.0 < i < 1.0:
        raise BadInput(f"iou: must be between 0 and 1 (exclusive), got {i}")
    if not 0.0 <= c <= 1.0:
        raise BadInput(f"conf: must be between 0 and 1, got {c}")
    return EvalParams(iou=i, conf=c)


def check_pair(database, gt_version_id: int | None, pred_version_id: int) -> tuple[dict, dict]:
    """The (gt, pred) version rows, ready and fit for evaluation; NotFound / Conflict / BadInput."""
    pred = ds_store.require_ready(database, int(pred_version_id))
    if pred["pred_boxes"] == 0 and (pred.get("source") or {}).get("kind") != "infer":
        raise BadInput(f"dataset version {pred['id']} ({pred['name']}) holds no predictions")
    if gt_version_id is None or int(gt_version_id) == pred["id"]:
        gt = pred
    else:
        gt = ds_store.require_ready(database, int(gt_version_id))
    if gt["gt_boxes"] == 0:
        raise BadInput(f"dataset version {gt['id']} ({gt['name']}) holds no ground truth")
    return gt, pred


# --- building the evaluation set ---------------------------------------------------------------


@dataclass
class EvalSet:
    """The flat set plus what maps its rows back to the database."""

    data: FlatSet
    image_sha1: np.ndarray
    gt_ids: np.ndarray
    dt_ids: np.ndarray
    missing_confidence: int


def _columns(rows: list[tuple]) -> list[np.ndarray]:
    if not rows:
        return [np.zeros(0, dtype=object)] * 9
    return [np.asarray(c) for c in zip(*rows, strict=True)]


def build_set(database, gt_version_id: int, pred_version_id: int) -> EvalSet:
    """Ground truth of ``gt_version_id`` and predictions of ``pred_version_id`` on their common images."""
    sha1s = np.asarray(store.common_sha1s(database, gt_version_id, pred_version_id))
    if len(sha1s) == 0:
        raise BadInput(f"dataset versions {gt_version_id} and {pred_version_id} have no image in common")
    g = _columns(store.eval_boxes(database, gt_version_id, "gt", pred_version_id))
    d = _columns(store.eval_boxes(database, pred_version_id, "pred", gt_version_id))
    class_ids = np.unique(np.concatenate([g[2].astype(np.int64), d[2].astype(np.int64)]))
    g_xyxy = np.stack([c.astype(np.float64) for c in g[3:7]], axis=1) if len(g[0]) else np.zeros((0, 4))
    d_xyxy = np.stack([c.astype(np.float64) for c in d[3:7]], axis=1) if len(d[0]) else np.zeros((0, 4))
    g_wh = g_xyxy[:, 2:] - g_xyxy[:, :2]
    d_wh = d_xyxy[:, 2:] - d_xyxy[:, :2]
    score = d[8].astype(np.float64) if len(d[0]) else np.zeros(0)  # None -> nan
    missing = int(np.isnan(score).sum())
    score = np.where(np.isnan(score), 1.0, score)  # a prediction without confidence counts as certain
    gt = FlatGT(
        image=np.searchsorted(sha1s, g[1]).astype(np.int64),
        category=np.searchsorted(class_ids, g[2].astype(np.int64)).astype(np.int64),
        xywh=np.concatenate([g_xyxy[:, :2], g_wh], axis=1),
        area=g_wh[:, 0] * g_wh[:, 1],
        crowd=np.zeros(len(g_xyxy), dtype=bool),
        difficult=g[7].astype(bool) if len(g[0]) else np.zeros(0, dtype=bool),
        ann_id=np.arange(1, len(g_xyxy) + 1, dtype=np.int64),
    )
    dt = FlatDT(
        image=np.searchsorted(sha1s, d[1]).astype(np.int64),
        category=np.searchsorted(class_ids, d[2].astype(np.int64)).astype(np.int64),
        xywh=np.concatenate([d_xyxy[:, :2], d_wh], axis=1),
        score=score,
    )
    names = classes_store.names_by_id(database)
    data = FlatSet(
        image_ids=np.arange(len(sha1s), dtype=np.int64), class_ids=class_ids, gt=gt, dt=dt,
        class_names={int(c): names.get(int(c), str(c)) for c in class_ids},
    )
    return EvalSet(data=data, image_sha1=sha1s, gt_ids=g[0].astype(np.int64), dt_ids=d[0].astype(np.int64),
                   missing_confidence=missing)


# --- the computation ---------------------------------------------------------------------------


def _f(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray):
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def compute(es: EvalSet, params: EvalParams) -> tuple[dict, list[tuple]]:
    """Every number of one evaluation, and the box labels ``(annotation_id, sha1, kind, class_id, label)``."""
    data = es.data
    k = data.num_classes
    names = [data.class_names[int(c)] for c in data.class_ids]
    coco = evaluate_flat(data)
    voc = evaluate_voc_flat(data, params.iou)
    voc50 = voc if params.iou == 0.5 else evaluate_voc_flat(data, 0.5)
    curves = pr_curves(data, params.iou)
    sweep = f1_sweep(data, params.iou)
    gl, dl, _, _ = label_flat(data, [params.iou], params.conf)[0]
    cm = confusion_matrix(data, params.iou, params.conf)
    tp = np.bincount(data.dt.category[dl == TP], minlength=k).astype(float)
    fp = np.bincount(data.dt.category[dl == FP], minlength=k).astype(float)
    fn = np.bincount(data.gt.category[gl == FN], minlength=k).astype(float)
    p, r, f = _prf(tp, fp, fn)
    p_all, r_all, f_all = _prf(tp.sum(), fp.sum(), fn.sum())
    n_gt = np.bincount(data.gt.category, minlength=k)
    n_dt = np.bincount(data.dt.category, minlength=k)
    ap, ap50 = coco.per_class_ap, coco.per_class_ap50
    per_class = {}
    for i, cid in enumerate(data.class_ids.tolist()):
        per_class[names[i]] = {
            "class_id": cid, "gt": int(n_gt[i]), "pred": int(n_dt[i]),
            "ap": _f(ap[cid]), "ap50": _f(ap50[cid]), "voc_ap": _f(voc.per_class_ap[cid]),
            "tp": int(tp[i]), "fp": int(fp[i]), "fn": int(fn[i]),
            "precision": _f(p[i]), "recall": _f(r[i]), "f1": _f(f[i]),
        }
    result = {
        "params": params.to_dict(),
        "images": int(data.num_images),
        "gt_boxes": int(len(data.gt)),
        "pred_boxes": int(len(data.dt)),
        "missing_confidence": es.missing_confidence,
        "mAP50": float(coco.map50),
        "mAP50_95": float(coco.map50_95),
        "coco_stats": [float(s) for s in coco.stats],
        "coco_stat_names": list(STAT_NAMES),
        "voc_mAP": float(voc.map),
        "voc_mAP50": float(voc50.map),
        "precision": _f(p_all), "recall": _f(r_all), "f1": _f(f_all),
        "tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum()),
        "per_class": per_class,
        "pr_curves": {
            names[i]: {"ap": _f(curves[cid].ap), "num_gt": curves[cid].num_gt,
                       "precision": [_f(x, 4) for x in curves[cid].precision_101]}
            for i, cid in enumerate(data.class_ids.tolist())
        },
        "recall_points": [_f(x, 2) for x in np.linspace(0, 1, 101)],
        "f1_sweep": {
            "conf": [_f(x, 4) for x in sweep.conf_thrs],
            "precision": [_f(x, 4) for x in sweep.precision_all],
            "recall": [_f(x, 4) for x in sweep.recall_all],
            "f1": [_f(x, 4) for x in sweep.f1_all],
            "per_class_f1": {names[i]: [_f(x, 4) for x in sweep.f1[i]] for i in range(k)},
            "best_conf": _f(sweep.best_conf), "best_f1": _f(sweep.best_f1),
        },
        "confusion": {"classes": [*names, "background"], "matrix": cm.tolist()},
    }
    cls = data.class_ids
    labels = [
        *zip(es.gt_ids.tolist(), es.image_sha1[data.gt.image].tolist(), ["gt"] * len(gl),
             cls[data.gt.category].tolist(), [LABEL_NAMES[int(x)] for x in gl], strict=True),
        *zip(es.dt_ids.tolist(), es.image_sha1[data.dt.image].tolist(), ["pred"] * len(dl),
             cls[data.dt.category].tolist(), [LABEL_NAMES[int(x)] for x in dl], strict=True),
    ]
    return result, labels


def _describe(v: dict) -> dict:
    src = v.get("source") or {}
    meta = (v.get("report") or {}).get("pred_meta") or {}
    model = src.get("model") or meta.get("model") or meta.get("model_name")
    return {"id": v["id"], "name": v["name"], "project_id": v["project_id"], "model_id": src.get("model_id"),
            "model": str(model) if model is not None else None}


def evaluate(database, pred_version_id: int, gt_version_id: int | None = None, iou=None, conf=None,
             *, refresh: bool = False) -> dict:
    """Evaluate (or fetch from the cache) a prediction version; see the module docstring.

    Returns the result dict plus ``gt_version``, ``pred_version`` (id, name, model), ``mode``
    (``same`` | ``matched``), ``evaluation_id``, ``cached`` and ``elapsed_s``.
    """
    params = check_params(iou, conf)
    gt, pred = check_pair(database, gt_version_id, pred_version_id)
    head = {"gt_version": _describe(gt), "pred_version": _describe(pred),
            "mode": "same" if gt["id"] == pred["id"] else "matched"}
    if not refresh:
        row = store.find_evaluation(database, gt["id"], pred["id"], params.key())
        if row is not None:
            return {**head, **row["result"], "evaluation_id": row["id"], "cached": True,
                    "elapsed_s": row["elapsed_s"]}
    t0 = time.perf_counter()
    result, labels = compute(build_set(database, gt["id"], pred["id"]), params)
    elapsed = time.perf_counter() - t0
    if refresh:
        store.delete_evaluation(database, gt["id"], pred["id"], params.key())
    eid = store.save_evaluation(database, gt_version_id=gt["id"], pred_version_id=pred["id"],
                                params_hash=params.key(), params=params.to_dict(), result=result,
                                elapsed_s=elapsed, labels=labels)
    log.info("evaluated version %s against %s in %.3fs", pred["id"], gt["id"], elapsed)
    return {**head, **result, "evaluation_id": eid, "cached": False, "elapsed_s": elapsed}


def resolve_model(database, model_id: int, test_version_id: int) -> int:
    """The newest prediction version of ``model_id`` on ``test_version_id``; NotFound if none."""
    ids = store.model_prediction_versions(database, int(model_id), int(test_version_id))
    if not ids:
        raise NotFound(f"model {model_id} has no predictions on dataset version {test_version_id}: "
                       "run inference first (POST /api/v1/infer)")
    return ids[0]


def summary(result: dict) -> dict:
    """The headline numbers of a result (what the CLI prints and a job keeps)."""
    keys = ("evaluation_id", "mode", "images", "mAP50", "mAP50_95", "voc_mAP", "precision", "recall", "f1")
    return {k: result[k] for k in keys if k in result}


# --- as a job ----------------------------------------------------------------------------------


def _run_job(ctx: JobContext, job: dict, progress: Progress) -> dict:
    p = job["params"]
    progress(0.05, "evaluating")
    res = evaluate(ctx.database, p["pred_version_id"], p.get("gt_version_id"), p.get("iou"), p.get("conf"))
    progress(1.0, "done")
    return summary(res)


register("evaluate", InternalKind(run=_run_job))


# --- the dataset view: images filtered by box label --------------------------------------------


def label_page(database, pred_version_id: int, gt_version_id: int | None = None, iou=None, conf=None, *,
               label: str | None = None, class_name: str | None = None, offset: int = 0, limit: int = 24) -> dict:
    """A page of evaluated images holding a box with ``label`` (and of ``class_name``), every box labelled.

    Returns ``{"evaluation_id", "params", "total", "counts": {label: boxes}, "assets": [{sha1, filename,
    width, height, boxes: [{id, kind, class, x1, y1, x2, y2, confidence, label}]}]}``.
    """
    label = (label or "").strip().upper() or None
    if label is not None and label not in LABELS:
        raise BadInput(f"label: expected one of {', '.join(LABELS)}, got {label!r}")
    class_id = classes_store.class_id(database, class_name) if class_name else None
    res = evaluate(database, pred_version_id, gt_version_id, iou, conf)
    eid, gid, pid = res["evaluation_id"], res["gt_version"]["id"], res["pred_version"]["id"]
    total = store.count_labelled_assets(database, eid, pid, label, class_id)
    sha1s = store.page_labelled_sha1s(database, eid, pid, label, class_id, offset=offset, limit=limit)
    labels = store.labels_for(database, eid, sha1s)
    gt_boxes = store.boxes_with_ids(database, gid, "gt", sha1s)
    pred_boxes = store.boxes_with_ids(database, pid, "pred", sha1s)
    assets = store.asset_rows(database, pid, sha1s)
    for a in assets:
        boxes = gt_boxes.get(a["sha1"], []) + pred_boxes.get(a["sha1"], [])
        for b in boxes:
            b["label"] = labels.get(b["id"], "IGNORED")
        a["boxes"] = boxes
    counts = {name: 0 for name in LABELS}
    counts.update(store.label_counts(database, eid))
    return {"evaluation_id": eid, "gt_version": res["gt_version"], "pred_version": res["pred_version"],
            "params": res["params"], "total": total, "offset": offset, "limit": limit, "counts": counts,
            "assets": assets}
