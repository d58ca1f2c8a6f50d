"""Dataset analysis: totals, YMIR-bucket histograms (GT and predictions apart), class warnings.

Columns come out of SQL in one read each and are bucketed with ``np.searchsorted`` +
``np.bincount``: no Python loop per box. Buckets are YMIR's; a bucket holds ``[edge_i,
edge_{i+1})`` and the last one is open-ended (``edge_n`` and above), so there are as many
buckets as edges. Versions are immutable, so the heavy part is cached per version
(``version_analyses``); warnings are recomputed on every read because they also look at the
project's current target classes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from detkit.errors import BadInput
from hub.datasets import quality
from hub.jobs.kinds import InternalKind, JobContext, Progress, register
from hub.store import classes as classes_store
from hub.store import datasets as ds_store
from hub.store import evaluations as store
from hub.store import projects as projects_store

log = logging.getLogger(__name__)

ANALYSIS_VERSION = 1
MAX_COMPARE = 5
#: a class with fewer boxes than this gets a warning
MIN_CLASS_BOXES = 500
#: a class with fewer boxes than this share of the largest class gets a warning
MIN_CLASS_SHARE = 0.1
_COUNTS = [0, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 100]


def _steps(top: float, step: float) -> list[float]:
    return [round(i * step, 6) for i in range(int(round(top / step)) + 1)]


#: YMIR's buckets: name -> (edges, unit)
BUCKETS: dict[str, tuple[list[float], str]] = {
    "image_mb": (_steps(5, 0.5), "MB"),
    "image_area": ([0, 1e5, 5e5, 1e6, 2e6, 4e6, 6e6, 8e6], "px"),
    "hw_ratio": (_steps(1.5, 0.1), ""),
    "quality": (_steps(1, 0.1), ""),
    "box_area": ([0, 1, 50, 500, 2500, 5000, 1e4, 5e4, 1e5, 2e5], "px"),
    "box_ratio": (_steps(1, 0.1), ""),
    "boxes_per_image": (_COUNTS, ""),
    "classes_per_image": (_COUNTS, ""),
}
IMAGE_HISTOGRAMS = ("image_mb", "image_area", "hw_ratio", "quality")
BOX_HISTOGRAMS = ("box_area", "box_ratio", "boxes_per_image", "classes_per_image")


def _label(x: float) -> str:
    if x >= 1e6 and x % 1e5 == 0:
        return f"{x / 1e6:g}M"
    if x >= 1e4 and x % 1e3 == 0:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def bucket_labels(edges: list[float]) -> list[str]:
    """``"0-0.5"``, ..., ``"5+"``: one label per bucket (the last is open-ended)."""
    out = [f"{_label(a)}-{_label(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [*out, f"{_label(edges[-1])}+"]


def histogram(values, name: str) -> dict:
    """Counts of ``values`` in the named bucket set (values below the first edge land in the first)."""
    edges, unit = BUCKETS[name]
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    idx = np.clip(np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="right") - 1, 0, len(edges) - 1)
    counts = np.bincount(idx, minlength=len(edges))
    return {"edges": edges, "labels": bucket_labels(edges), "unit": unit, "counts": counts.tolist()}


def _columns(rows: list[tuple], n: int) -> list[np.ndarray]:
    if not rows:
        return [np.zeros(0)] * n
    return [np.asarray(c, dtype=np.float64) for c in zip(*rows, strict=True)]


def _kind_part(database, version_id: int, kind: str, counts: np.ndarray, names: dict[int, str]) -> dict:
    """Totals and box histograms of one kind (``gt`` or ``pred``)."""
    cls, box_area, img_area = _columns(store.box_columns(database, version_id, kind), 3)
    n_img = len(counts)
    per_img_classes = np.asarray(store.classes_per_image(database, version_id, kind), dtype=np.int64)
    per_img_classes = np.concatenate([per_img_classes, np.zeros(n_img - len(per_img_classes), np.int64)])
    positive = int((counts > 0).sum())
    n_box = int(counts.sum())
    ids, box_n = np.unique(cls.astype(np.int64), return_counts=True)
    per_class_images = {
        k: v["images"] for k, v in ds_store.class_counts(database, version_id)[kind].items()
    }
    per_class = {}
    for cid, nb in zip(ids.tolist(), box_n.tolist(), strict=True):
        name = names.get(cid, str(cid))
        imgs = per_class_images.get(name, 0)
        per_class[name] = {
            "boxes": nb, "images": imgs, "negative_images": n_img - imgs,
            "share": round(nb / n_box, 6) if n_box else 0.0,
        }
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(img_area > 0, box_area / img_area, np.nan)
    return {
        "boxes": n_box,
        "avg_boxes_per_image": round(n_box / n_img, 4) if n_img else 0.0,
        "positive_images": positive,
        "negative_images": n_img - positive,
        "positive_share": round(positive / n_img, 6) if n_img else 0.0,
        "per_class": per_class,
        "class_proportion": {k: v["share"] for k, v in per_class.items()},
        "histograms": {
            "box_area": histogram(box_area, "box_area"),
            "box_ratio": histogram(ratio, "box_ratio"),
            "boxes_per_image": histogram(counts, "boxes_per_image"),
            "classes_per_image": histogram(per_img_classes, "classes_per_image"),
        },
    }


def compute(database, version_id: int) -> dict:
    """The cacheable part of a version's analysis (no warnings)."""
    size, width, height, quality, gt_count, pred_count = _columns(store.image_columns(database, version_id), 6)
    names = classes_store.names_by_id(database)
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = np.where(width > 0, height / width, np.nan)
    known_quality = quality[np.isfinite(quality)]
    return {
        "images": len(size),
        "storage_bytes": int(size.sum()),
        "quality_unknown": int(len(quality) - len(known_quality)),
        "image_histograms": {
            "image_mb": histogram(size / 1e6, "image_mb"),
            "image_area": histogram(width * height, "image_area"),
            "hw_ratio": histogram(hw, "hw_ratio"),
            "quality": histogram(known_quality, "quality"),
        },
        "gt": _kind_part(database, version_id, "gt", gt_count, names),
        "pred": _kind_part(database, version_id, "pred", pred_count, names),
    }


def class_warnings(per_class: dict[str, dict], targets: list[str] = ()) -> list[dict]:
    """Warnings on GT class counts: too few boxes, under a tenth of the largest class, missing targets."""
    out = []
    biggest = max(per_class.items(), key=lambda kv: kv[1]["boxes"], default=None)
    for name, c in sorted(per_class.items()):
        if c["boxes"] < MIN_CLASS_BOXES:
            out.append({"code": "few_boxes", "class": name,
                        "message": f"class {name} has {c['boxes']} boxes (fewer than {MIN_CLASS_BOXES})"})
        if biggest and name != biggest[0] and c["boxes"] < MIN_CLASS_SHARE * biggest[1]["boxes"]:
            out.append({"code": "imbalanced", "class": name,
                        "message": f"class {name} has {c['boxes']} boxes, under a tenth of the largest class "
                                   f"{biggest[0]} ({biggest[1]['boxes']})"})
    for name in targets:
        if name not in per_class:
            out.append({"code": "missing_target", "class": name,
                        "message": f"target class {name} has no boxes in this version"})
    return out


def analyze(database, version_id: int, *, refresh: bool = False, assets_dir: Path | None = None,
            asset_store=None) -> dict:
    """A version's analysis: ``{"version", "images", "storage_bytes", "image_histograms", "gt", "pred",
    "targets", "warnings", "cached", "elapsed_s"}`` (see the module docstring).

    With ``assets_dir``, images without a quality score get one first (import does not decode
    pixels; :mod:`hub.datasets.quality`), so the quality histogram covers them; ``asset_store``
    fetches the files a remote store's cache lacks first.
    """
    v = ds_store.require_ready(database, int(version_id))
    key = hashlib.sha1(json.dumps({"v": ANALYSIS_VERSION}).encode()).hexdigest()
    row = None if refresh else store.find_analysis(database, v["id"], key)
    if row is None:
        t0 = time.perf_counter()
        if assets_dir is not None:
            quality.score_missing(database, Path(assets_dir), v["id"], asset_store=asset_store)
        result = compute(database, v["id"])
        elapsed = time.perf_counter() - t0
        store.save_analysis(database, v["id"], key, result, elapsed)
        cached = False
        log.info("analysed version %s in %.3fs", v["id"], elapsed)
    else:
        result, elapsed, cached = row["result"], row["elapsed_s"], True
    targets = projects_store.get_project(database, v["project_id"]).get("targets") or []
    ids = classes_store.ids_by_main_name(database)
    positive = store.images_with_classes(database, v["id"], "gt", [ids[t] for t in targets if t in ids])
    return {
        "version": {"id": v["id"], "name": v["name"], "project_id": v["project_id"]},
        **result,
        # positive / negative as training sees them: images with / without a box of a target class
        "targets": {"classes": targets, "positive_images": positive, "negative_images": result["images"] - positive},
        "warnings": class_warnings(result["gt"]["per_class"], targets),
        "cached": cached,
        "elapsed_s": elapsed,
    }


def compare(database, version_ids: list[int], assets_dir: Path | None = None, asset_store=None) -> dict:
    """Analyses of 1 to 5 versions, for charts overlaid on one page."""
    ids = list(dict.fromkeys(int(i) for i in version_ids))
    if not ids:
        raise BadInput("versions: give 1 to 5 dataset version ids")
    if len(ids) > MAX_COMPARE:
        raise BadInput(f"versions: at most {MAX_COMPARE} versions side by side, got {len(ids)}")
    return {"versions": [analyze(database, i, assets_dir=assets_dir, asset_store=asset_store) for i in ids],
            "buckets": {k: bucket_labels(e) for k, (e, _) in BUCKETS.items()}}


def _run_job(ctx: JobContext, job: dict, progress: Progress) -> dict:
    progress(0.05, "analysing")
    assets_dir = ctx.settings.assets_dir if ctx.settings is not None else None
    asset_store = ctx.settings.asset_store if ctx.settings is not None else None
    res = analyze(ctx.database, job["params"]["version_id"], refresh=True, assets_dir=assets_dir,
                  asset_store=asset_store)
    progress(1.0, "done")
    return {"version_id": res["version"]["id"], "images": res["images"], "warnings": len(res["warnings"])}


register("analyze", InternalKind(run=_run_job))
