"""Preparation of mining data: the candidate pool a mining job scores, with a report of what was dropped.

In the guide's order: take the mining set version(s); drop the assets already in the training / validation /
test sets (``used``); drop exact duplicates (the same sha1 in two input versions) and near duplicates
(perceptual hash within ``near_dup_threshold`` bits of an image kept before it, or of a used one); keep the
assets matching the class / tag filters; then sample (``sample`` images, seeded) and chunk (``chunk_size`` x
``chunk_index``). The result is a new ready version; its report says, per reason, how many were dropped, with
examples. An empty result is an error (nothing to mine) and no version is left behind.

Perceptual hashes (``imagehash.phash``, 64 bits) are computed once per asset and cached in the workspace
database; near-duplicate search compares each candidate against every kept hash at once (numpy XOR +
popcount), so a pool of n images costs n vectorised passes, not n² Python comparisons.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from detkit.errors import BadInput, NotFound
from hub.jobs.kinds import InternalKind, JobContext, register
from hub.store import assets as assets_store
from hub.store import classes as classes_store
from hub.store import datasets as datasets_store
from hub.store import jobs as jobs_store
from hub.store import mining as mining_store

log = logging.getLogger(__name__)

KIND = "mining_prepare"
EXAMPLES = 20
REASONS = ("used", "exact_duplicate", "near_duplicate", "near_duplicate_of_used", "filtered", "sampled_out",
           "other_chunk")


# -- perceptual hashes -----------------------------------------------------------------------------------
def _phash(path) -> int:
    import imagehash
    from PIL import Image

    with Image.open(path) as im:
        h = imagehash.phash(im)
    value = int(str(h), 16)
    return value - (1 << 64) if value >= 1 << 63 else value  # SQLite integers are signed 64-bit


def phashes(ctx: JobContext, sha1s: list[str], progress=None) -> dict[str, int]:
    """The assets' perceptual hashes, from the cache or computed (and cached) now."""
    known = mining_store.cached_phashes(ctx.database, sha1s)
    missing = [s for s in sha1s if s not in known]
    fresh: list[tuple[str, int]] = []
    for i, sha1 in enumerate(missing):
        try:
            fresh.append((sha1, _phash(ctx.settings.asset_store.local_path(sha1))))
        except (OSError, NotFound) as exc:  # a file that cannot be read is reported, never hashed as something else
            log.warning("perceptual hash of %s failed: %s", sha1, exc)
        if len(fresh) >= 500:
            mining_store.store_phashes(ctx.database, fresh)
            known.update(fresh)
            fresh = []
        if progress and i % 50 == 0:
            progress(i / max(1, len(missing)), f"hashing {i}/{len(missing)} images")
    mining_store.store_phashes(ctx.database, fresh)
    known.update(fresh)
    return known


def _hamming(a: np.ndarray, b: int) -> np.ndarray:
    return np.bitwise_count(a ^ np.uint64(b & ((1 << 64) - 1)))


def near_duplicates(order: list[str], hashes: dict[str, int], threshold: int,
                    used: np.ndarray | None = None) -> dict[str, tuple[str, str | None]]:
    """Greedy near-duplicate removal over ``order``: ``{dropped sha1: (reason, the image it duplicates)}``.

    An image is dropped when its hash is within ``threshold`` bits of a used image's (``used``: uint64 array)
    or of an image kept before it.
    """
    dropped: dict[str, tuple[str, str | None]] = {}
    kept = np.zeros(len(order), dtype=np.uint64)  # the hashes of the images kept so far (unhashable ones stay)
    kept_sha1: list[str] = []
    for sha1 in order:
        h = hashes.get(sha1)
        if h is None:
            continue
        if used is not None and used.size and int(_hamming(used, h).min()) <= threshold:
            dropped[sha1] = ("near_duplicate_of_used", None)
            continue
        n = len(kept_sha1)
        if n:
            d = _hamming(kept[:n], h)
            j = int(d.argmin())
            if int(d[j]) <= threshold:
                dropped[sha1] = ("near_duplicate", kept_sha1[j])
                continue
        kept[n] = np.uint64(h & ((1 << 64) - 1))
        kept_sha1.append(sha1)
    return dropped


# -- submit ----------------------------------------------------------------------------------------------
def _int_or_none(value, what: str, minimum: int = 0):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInput(f"preparation: {what} must be an integer >= {minimum}, got {value!r}")
    return value


def submit_prepare(
    ctx: JobContext, *, project_id: int, version_ids: list[int], exclude_version_ids: list[int] = (),
    exact_dedup: bool = True, near_dup_threshold: int | None = 4, classes_in: list[str] = (),
    classes_out: list[str] = (), asset_tags: dict | None = None, sample: int | None = None, seed: int = 0,
    chunk_size: int | None = None, chunk_index: int = 0, name: str | None = None, created_by: int | None = None,
) -> dict:
    """Validate, then queue the internal ``mining_prepare`` job (its result: ``{"version_id", "report"}``)."""
    if not version_ids:
        raise BadInput("preparation: give at least one mining set version")
    for vid in [*version_ids, *exclude_version_ids]:
        v = datasets_store.require_ready(ctx.database, vid)
        if v["project_id"] != project_id:
            raise BadInput(f"dataset version {vid} belongs to another project")
    if near_dup_threshold is not None:
        _int_or_none(near_dup_threshold, "near_dup_threshold")
        if near_dup_threshold > 32:
            raise BadInput(f"preparation: near_dup_threshold {near_dup_threshold} of 64 bits would call unrelated "
                           "images duplicates; use 0-32 (default 4)")
    _int_or_none(sample, "sample", 1)
    _int_or_none(chunk_size, "chunk_size", 1)
    _int_or_none(chunk_index, "chunk_index", 0)
    for c in [*classes_in, *classes_out]:
        classes_store.class_id(ctx.database, c)  # NotFound names an unknown class
    for key in asset_tags or {}:
        assets_store.check_tag_key(key)
    params = dict(project_id=project_id, version_ids=list(version_ids), exclude_version_ids=list(exclude_version_ids),
                  exact_dedup=bool(exact_dedup), near_dup_threshold=near_dup_threshold,
                  classes_in=list(classes_in), classes_out=list(classes_out), asset_tags=asset_tags or {},
                  sample=sample, seed=int(seed), chunk_size=chunk_size, chunk_index=int(chunk_index),
                  name=name or "mining data")
    return jobs_store.create_job(ctx.database, kind=KIND, category="internal", params=params, project_id=project_id,
                                 created_by=created_by)


# -- run -------------------------------------------------------------------------------------------------
def _filter_where(ctx: JobContext, vid: int, p: dict) -> tuple[str, list]:
    """Class filters look at GT and predictions (an unlabeled pool only has the latter); tags at the asset."""
    ids_in = [classes_store.class_id(ctx.database, c) for c in p["classes_in"]]
    ids_out = [classes_store.class_id(ctx.database, c) for c in p["classes_out"]]
    conds, params = [], []
    if ids_in:
        g, gp = assets_store.asset_where(vid, classes_in=ids_in, kind="gt")
        q, qp = assets_store.asset_where(vid, classes_in=ids_in, kind="pred")
        conds.append(f"(({g}) OR ({q}))")
        params += gp + qp
    if ids_out:
        g, gp = assets_store.asset_where(vid, classes_out=ids_out, kind="gt")
        q, qp = assets_store.asset_where(vid, classes_out=ids_out, kind="pred")
        conds.append(f"({g}) AND ({q})")
        params += gp + qp
    if p["asset_tags"]:
        t, tp = assets_store.asset_where(vid, asset_tags=p["asset_tags"])
        conds.append(t)
        params += tp
    return (" AND ".join(conds) or "1"), params


def _drop(report: dict, reason: str, sha1: str, of: str | None = None) -> None:
    report["dropped"][reason] += 1
    ex = report["examples"].setdefault(reason, [])
    if len(ex) < EXAMPLES:
        ex.append({"sha1": sha1, **({"duplicate_of": of} if of else {})})


def prepare(ctx: JobContext, p: dict, progress=lambda f, m="": None) -> dict:
    """Run a preparation (the job's body; also callable directly): returns ``{"version_id", "report"}``."""
    t0 = time.time()
    report = {"input": 0, "kept": 0, "dropped": dict.fromkeys(REASONS, 0), "examples": {}, "unhashed": 0,
              "version_ids": p["version_ids"], "exclude_version_ids": p["exclude_version_ids"],
              "near_dup_threshold": p["near_dup_threshold"]}
    members = mining_store.version_members(ctx.database, p["version_ids"])
    report["input"] = len(members)
    used = mining_store.sha1s_of(ctx.database, p["exclude_version_ids"])
    order: list[tuple[str, int]] = []
    seen: set[str] = set()
    for sha1, vid in members:
        if sha1 in used:
            _drop(report, "used", sha1)
        elif sha1 in seen:
            if p["exact_dedup"]:
                _drop(report, "exact_duplicate", sha1, sha1)
            # without exact dedup the image still enters the version once: a version holds an asset once
        else:
            seen.add(sha1)
            order.append((sha1, vid))
    progress(0.05, f"{len(order)} candidates after removing used assets")

    selected = set()
    for vid in p["version_ids"]:
        where, params = _filter_where(ctx, vid, p)
        selected |= {s for s, _ in mining_store.version_members(ctx.database, [vid], where, params)}
    kept = []
    for sha1, vid in order:
        if sha1 in selected:
            kept.append((sha1, vid))
        else:
            _drop(report, "filtered", sha1)

    if p["near_dup_threshold"] is not None and kept:
        used_list = sorted(used)
        hashes = phashes(ctx, [s for s, _ in kept] + used_list, lambda f, m: progress(0.05 + 0.8 * f, m))
        report["unhashed"] = sum(1 for s, _ in kept if s not in hashes)
        used_arr = np.array([hashes[s] & ((1 << 64) - 1) for s in used_list if s in hashes], dtype=np.uint64)
        dropped = near_duplicates([s for s, _ in kept], hashes, int(p["near_dup_threshold"]), used_arr)
        for sha1, (reason, of) in dropped.items():
            _drop(report, reason, sha1, of)
        kept = [(s, v) for s, v in kept if s not in dropped]
    progress(0.9, "sampling")

    if p.get("sample") and p["sample"] < len(kept):
        rng = np.random.default_rng(int(p.get("seed") or 0))
        chosen = set(np.sort(rng.choice(len(kept), size=p["sample"], replace=False)).tolist())
        for i, (sha1, _) in enumerate(kept):
            if i not in chosen:
                _drop(report, "sampled_out", sha1)
        kept = [k for i, k in enumerate(kept) if i in chosen]
    if p.get("chunk_size"):
        lo = p["chunk_size"] * int(p.get("chunk_index") or 0)
        part = kept[lo:lo + p["chunk_size"]]
        part_set = {s for s, _ in part}
        for sha1, _ in kept:
            if sha1 not in part_set:
                _drop(report, "other_chunk", sha1)
        kept = part

    report["kept"] = len(kept)
    report["seconds"] = round(time.time() - t0, 3)
    if not kept:
        nonzero = ", ".join(f"{k}: {v}" for k, v in report["dropped"].items() if v) or "the input is empty"
        raise BadInput(f"the mining set has no images left after preparation: {report['input']} in, all dropped "
                       f"({nonzero})")
    first = datasets_store.get_version(ctx.database, p["version_ids"][0])
    group = datasets_store.get_or_create_group(ctx.database, p["project_id"], p["name"])
    version = datasets_store.create_version(
        ctx.database, group["id"], source={"kind": "mining_prepare", **{k: p[k] for k in (
            "version_ids", "exclude_version_ids", "near_dup_threshold", "sample", "chunk_size")}},
        operation="mining_prepare", parent_ids=list(p["version_ids"]),
        note=f"mining data from {first['group_name'] if 'group_name' in first else first['id']}: "
             f"{len(kept)} of {report['input']} images",
        created_by=p.get("created_by"),
    )
    with ctx.database.write() as db:
        mining_store.fill_picked_version(db, version["id"], kept, {"operation": "mining_prepare", **report})
    progress(1.0, f"{len(kept)} images kept of {report['input']}")
    return {"version_id": version["id"], "report": report}


def _run_job(ctx: JobContext, job: dict, progress) -> dict:
    return prepare(ctx, {**job["params"], "created_by": job.get("created_by")}, progress)


register(KIND, InternalKind(run=_run_job))
