"""Version operations: filter, merge, sample, split (each makes new immutable versions) and export.

Selections run SQL-side (:mod:`hub.store.assets` pick/copy); only sampling and splitting draw the
seeded random choice in numpy over the sorted sha1 list, so the same seed gives the same result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput, Conflict, YmirError
from hub.store import assets as asset_store
from hub.store import classes as class_store
from hub.store import datasets as ds_store
from hub.store.workspace import Workspace

log = logging.getLogger(__name__)

MERGE_STRATEGIES = ("stop", "host", "guest")
SPLIT_PARTS = ("train", "val", "test")


def _target_group(ws: Workspace, src: dict, name: str | None) -> int:
    if name and name.strip():
        return ds_store.get_or_create_group(ws.database, src["project_id"], name)["id"]
    return src["group_id"]


def _make(
    ws: Workspace,
    src: dict,
    *,
    operation: str,
    params: dict,
    parents: list[int],
    name: str | None,
    fill,
    user_id: int | None = None,
) -> dict:
    """Create a version and fill it in one transaction (``fill(db, version_id)``); failed on error."""
    version = ds_store.create_version(
        ws.database,
        _target_group(ws, src, name),
        source={"kind": operation, **params},
        operation=operation,
        parent_ids=parents,
        note=params.get("note", ""),
        created_by=user_id,
    )
    try:
        with ws.database.write() as db:
            asset_store.start_pick(db)
            fill(db, version["id"])
            asset_store.copy_picked(db, version["id"])
            ds_store.finish_version(db, version["id"], {"operation": operation, **params, "skipped": []})
    except YmirError as exc:
        ds_store.fail_version(ws.database, version["id"], exc.message)
        raise
    except Exception as exc:
        ds_store.fail_version(ws.database, version["id"], f"internal error: {type(exc).__name__}: {exc}")
        raise
    v = ds_store.get_version(ws.database, version["id"])
    v["report"]["images"] = v["images"]
    return v


def _class_ids(ws: Workspace, names) -> list[int]:
    return [class_store.class_id(ws.database, n) for n in names or []]


def filter_version(
    ws: Workspace,
    version_id: int,
    *,
    classes_in=(),
    classes_out=(),
    asset_tags: dict | None = None,
    box_tags: dict | None = None,
    name: str | None = None,
    user_id: int | None = None,
) -> dict:
    """Keep the assets with a gt box of ``classes_in`` (any), none of ``classes_out``, matching tags.

    ``asset_tags`` / ``box_tags`` map a tag key to a value (``""`` or ``"*"``: the key is present).
    """
    src = ds_store.require_ready(ws.database, version_id)
    if not (classes_in or classes_out or asset_tags or box_tags):
        raise BadInput("filter: give classes to keep or drop, or asset/box tags")
    where, params = asset_store.asset_where(
        version_id,
        classes_in=_class_ids(ws, classes_in),
        classes_out=_class_ids(ws, classes_out),
        asset_tags=asset_tags,
        box_tags=box_tags,
    )
    spec = {
        "from": version_id,
        "classes_in": [class_store.normalize(c) for c in classes_in or []],
        "classes_out": [class_store.normalize(c) for c in classes_out or []],
        "asset_tags": asset_tags or {},
        "box_tags": box_tags or {},
    }
    return _make(
        ws,
        src,
        operation="filter",
        params=spec,
        parents=[version_id],
        name=name,
        user_id=user_id,
        fill=lambda db, vid: asset_store.pick_where(db, version_id, where, params),
    )


def merge_versions(
    ws: Workspace,
    host_id: int,
    guest_ids: list[int],
    *,
    strategy: str = "stop",
    name: str | None = None,
    user_id: int | None = None,
) -> dict:
    """Merge guests into the host as a new version of the host's dataset.

    An asset in more than one input is a conflict: ``stop`` refuses the merge, ``host`` keeps the
    host's (earlier input's) annotations, ``guest`` takes the last guest's.
    """
    if strategy not in MERGE_STRATEGIES:
        raise BadInput(f"merge strategy {strategy!r}: expected one of {', '.join(MERGE_STRATEGIES)}")
    if not guest_ids:
        raise BadInput("merge: give at least one guest version")
    ids = [host_id, *guest_ids]
    if len(set(ids)) != len(ids):
        raise BadInput("merge: a version is listed twice")
    versions = [ds_store.require_ready(ws.database, i) for i in ids]
    host = versions[0]
    if strategy == "stop":
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                n = asset_store.overlap(ws.database.db, a, b)
                if n:
                    raise Conflict(
                        f"merge: versions {a} and {b} share {n} image(s); choose strategy host or guest"
                    )
    order = ids if strategy in ("stop", "host") else list(reversed(ids))

    def fill(db, vid):
        for src in order:
            asset_store.pick_where(db, src)

    spec = {"host": host_id, "guests": list(guest_ids), "strategy": strategy}
    return _make(ws, host, operation="merge", params=spec, parents=ids, name=name, fill=fill, user_id=user_id)


def _seeded_choice(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))


def sample_version(
    ws: Workspace,
    version_id: int,
    *,
    count: int | None = None,
    ratio: float | None = None,
    seed: int = 0,
    name: str | None = None,
    user_id: int | None = None,
) -> dict:
    """A seeded random subset: ``count`` images or ``ratio`` (0-1] of them."""
    src = ds_store.require_ready(ws.database, version_id)
    if (count is None) == (ratio is None):
        raise BadInput("sample: give exactly one of count or ratio")
    n = src["images"]
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BadInput(f"sample: count must be a positive integer, got {count!r}")
        if count > n:
            raise BadInput(f"sample: count {count} is more than the {n} images of version {version_id}")
        k = count
    else:
        if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not 0 < ratio <= 1:
            raise BadInput(f"sample: ratio must be in (0, 1], got {ratio!r}")
        k = max(1, int(round(n * ratio)))
    sha1s = asset_store.version_sha1s(ws.database, version_id)
    chosen = [sha1s[i] for i in _seeded_choice(len(sha1s), k, int(seed))]
    spec = {"from": version_id, "count": count, "ratio": ratio, "seed": int(seed)}
    return _make(
        ws,
        src,
        operation="sample",
        params=spec,
        parents=[version_id],
        name=name,
        user_id=user_id,
        fill=lambda db, vid: asset_store.pick_sha1s(db, version_id, chosen),
    )


def split_version(
    ws: Workspace,
    version_id: int,
    *,
    ratios: dict[str, float],
    seed: int = 0,
    name: str | None = None,
    user_id: int | None = None,
) -> dict[str, dict]:
    """Split into ``train``/``val``/``test`` parts (ratios summing to 1), each a new version.

    Each part becomes a version of the dataset ``<name or source dataset>-<part>``.
    """
    src = ds_store.require_ready(ws.database, version_id)
    parts = {k: v for k, v in ratios.items() if v}
    unknown = set(parts) - set(SPLIT_PARTS)
    if unknown:
        raise BadInput(f"split: unknown part(s) {', '.join(sorted(unknown))}; use {', '.join(SPLIT_PARTS)}")
    for k, v in parts.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0 < v < 1:
            raise BadInput(f"split: ratio of {k} must be in (0, 1), got {v!r}")
    if len(parts) < 2 or abs(sum(parts.values()) - 1.0) > 1e-6:
        raise BadInput(f"split: give at least two parts whose ratios sum to 1 (got {parts})")
    sha1s = asset_store.version_sha1s(ws.database, version_id)
    n = len(sha1s)
    order = np.random.default_rng(int(seed)).permutation(n)
    names = [p for p in SPLIT_PARTS if p in parts]
    bounds = np.round(np.cumsum([parts[p] for p in names]) * n).astype(int)
    bounds[-1] = n
    base = (name or "").strip() or src["group_name"]
    out: dict[str, dict] = {}
    start = 0
    for part, end in zip(names, bounds, strict=True):
        chosen = [sha1s[i] for i in np.sort(order[start:end])]
        start = end
        if not chosen:
            raise BadInput(f"split: part {part} would be empty ({n} images)")
        spec = {"from": version_id, "part": part, "ratios": parts, "seed": int(seed), "note": f"split {part}"}
        out[part] = _make(
            ws,
            src,
            operation="split",
            params=spec,
            parents=[version_id],
            name=f"{base}-{part}",
            user_id=user_id,
            fill=lambda db, vid, chosen=chosen: asset_store.pick_sha1s(db, version_id, chosen),
        )
    return out


EXPORT_FORMATS = ("voc", "coco", "yolo")


@dataclass
class _Record:
    """A stored asset as the exporters read it (the attributes of ``AssetRecord``)."""

    sha1: str
    format: str
    width: int
    height: int
    filename: str
    image_quality: float | None
    gt: ImageAnnotation | None
    pred: ImageAnnotation | None


def _annotation(row: dict, kind: str) -> ImageAnnotation | None:
    boxes = [
        Box(
            b["x1"],
            b["y1"],
            b["x2"],
            b["y2"],
            b["class"],
            difficult=b["difficult"],
            truncated=b["truncated"],
            pose=b["pose"],
            confidence=b["confidence"],
            box_quality=b["box_quality"],
            tags=b["tags"],
        )
        for b in row["boxes"]
        if b["kind"] == kind
    ]
    if kind == "pred" and not boxes:
        return None
    return ImageAnnotation(
        filename=row["filename"],
        width=row["width"],
        height=row["height"],
        boxes=boxes,
        image_quality=row["image_quality"],
        tags=row["tags"] if kind == "gt" else {},
    )


def version_records(ws: Workspace, version_id: int) -> list[_Record]:
    """Every asset of a version with its gt/pred annotations, ready for the exporters."""
    return [
        _Record(
            r["sha1"],
            r["format"],
            r["width"],
            r["height"],
            r["filename"],
            r["image_quality"],
            _annotation(r, "gt"),
            _annotation(r, "pred"),
        )
        for r in asset_store.iter_version(ws.database, version_id)
    ]


def export_version(
    ws: Workspace,
    version_id: int,
    fmt: str,
    out: str | Path,
    *,
    class_names: list[str] | None = None,
    progress=None,
) -> Path:
    """Write a version as a VOC zip, COCO (``.json``: gt only; ``.zip``: with images) or YOLO zip.

    ``class_names`` fixes the class order of COCO/YOLO (default: the version's classes by name).
    """
    from hub.datasets import export

    if fmt not in EXPORT_FORMATS:
        raise BadInput(f"export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    v = ds_store.require_ready(ws.database, version_id)
    records = version_records(ws, version_id)
    names = class_names or sorted(set(v["class_counts"]["gt"]) | set(v["class_counts"]["pred"]))
    out = Path(out)
    assets_dir = ws.settings.assets_dir
    if fmt != "coco" or out.suffix == ".zip":  # the image files, fetched into the cache if need be
        ws.settings.asset_store.ensure_local(r.sha1 for r in records)
    if fmt == "voc":
        pred_meta = (v.get("report") or {}).get("pred_meta")
        return export.export_voc_zip(records, assets_dir, out, pred_meta=pred_meta, progress=progress)
    if fmt == "coco":
        return export.export_coco(records, out, names, assets_dir=assets_dir, progress=progress)
    return export.export_yolo(records, assets_dir, out, names, progress=progress)
