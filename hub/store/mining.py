"""SQL for mining: cached perceptual hashes, the membership of candidate pools, mined and prepared versions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from hub.db import Database
from hub.store import assets as assets_store
from hub.store import datasets as datasets_store
from hub.store import predictions as predictions_store


def version_members(database: Database, version_ids: Sequence[int], where: str = "1",
                    params: Sequence = ()) -> list[tuple[str, int]]:
    """``(sha1, version_id)`` of the versions' assets in version order, then sha1 order (duplicates kept).

    ``where`` is a condition on ``va`` (``version_assets``) built by :func:`hub.store.assets.asset_where`
    for one version; it is applied to each version with that version's id substituted in ``params``.
    """
    out: list[tuple[str, int]] = []
    for vid in version_ids:
        rows = database.db.execute(
            f"SELECT va.asset_sha1 FROM version_assets va WHERE va.version_id = ? AND {where} "
            "ORDER BY va.asset_sha1",
            [vid, *params],
        ).fetchall()
        out += [(r[0], vid) for r in rows]
    return out


def sha1s_of(database: Database, version_ids: Iterable[int]) -> set[str]:
    ids = list(version_ids)
    if not ids:
        return set()
    marks = ", ".join("?" * len(ids))
    return {r[0] for r in database.db.execute(
        f"SELECT DISTINCT asset_sha1 FROM version_assets WHERE version_id IN ({marks})", ids).fetchall()}


def cached_phashes(database: Database, sha1s: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in range(0, len(sha1s), 900):
        chunk = list(sha1s[i:i + 900])
        marks = ", ".join("?" * len(chunk))
        out.update(database.db.execute(
            f"SELECT asset_sha1, phash FROM asset_phashes WHERE asset_sha1 IN ({marks})", chunk).fetchall())
    return out


def store_phashes(database: Database, pairs: Iterable[tuple[str, int]]) -> None:
    rows = list(pairs)
    if rows:
        with database.write() as db:
            db.conn.executemany("INSERT OR REPLACE INTO asset_phashes (asset_sha1, phash) VALUES (?, ?)", rows)


def asset_sizes(database: Database, sha1s: Sequence[str]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for i in range(0, len(sha1s), 900):
        chunk = list(sha1s[i:i + 900])
        marks = ", ".join("?" * len(chunk))
        for sha1, w, h in database.db.execute(
                f"SELECT sha1, width, height FROM assets WHERE sha1 IN ({marks})", chunk).fetchall():
            out[sha1] = (w, h)
    return out


def fill_picked_version(db, dst_version_id: int, picks: Iterable[tuple[str, int]], report: dict) -> None:
    """Copy the picked ``(sha1, source version)`` assets (images, GT, predictions, tags) into ``dst``; ready.

    Call inside ``Database.write()``.
    """
    assets_store.start_pick(db)
    db.conn.executemany("INSERT OR IGNORE INTO temp._pick (asset_sha1, src) VALUES (?, ?)", list(picks))
    assets_store.copy_picked(db, dst_version_id)
    datasets_store.finish_version(db, dst_version_id, report)


def fill_mined_version(
    db, dst_version_id: int, *, picks: Sequence[tuple[str, int]], scores: dict[str, float],
    preds: Sequence[tuple] | None, report: dict,
) -> None:
    """The top-k as a version: ``picks`` ``(sha1, source version)`` in rank order, each asset tagged with
    ``mining_score`` / ``mining_rank``; with ``preds`` (``(sha1, class_id, x1, y1, x2, y2, confidence)``)
    the model's predictions replace the sources' ``pred`` boxes (pre-annotations). Call inside ``write()``.
    """
    assets_store.start_pick(db)
    db.conn.executemany("INSERT OR IGNORE INTO temp._pick (asset_sha1, src) VALUES (?, ?)", list(picks))
    assets_store.copy_picked(db, dst_version_id)
    rows = db.execute("SELECT asset_sha1, tags FROM version_assets WHERE version_id = ?", [dst_version_id]).fetchall()
    rank = {sha1: i + 1 for i, (sha1, _) in enumerate(picks)}
    db.conn.executemany(
        "UPDATE version_assets SET tags = ? WHERE version_id = ? AND asset_sha1 = ?",
        [(json.dumps({**json.loads(tags or "{}"), "mining_score": f"{scores[sha1]:.6f}",
                      "mining_rank": str(rank[sha1])}), dst_version_id, sha1) for sha1, tags in rows],
    )
    if preds is not None:
        predictions_store.replace_predictions(db, dst_version_id, preds, tags='{"source": "prediction"}')
    datasets_store.finish_version(db, dst_version_id, report)


def mined_assets(database: Database, version_id: int, *, offset: int = 0, limit: int = 60) -> list[dict]:
    """A mined version's assets by rank (best score first): sha1, filename, score, rank, pred boxes."""
    rows = database.db.execute(
        "SELECT asset_sha1, filename, tags, pred_count FROM version_assets WHERE version_id = ? "
        "ORDER BY CAST(json_extract(tags, '$.mining_rank') AS INTEGER), asset_sha1 LIMIT ? OFFSET ?",
        [version_id, limit, offset],
    ).fetchall()
    out = []
    for sha1, filename, tags, preds in rows:
        t = json.loads(tags or "{}")
        out.append({"sha1": sha1, "filename": filename, "score": float(t["mining_score"]) if "mining_score" in t
                    else None, "rank": int(t["mining_rank"]) if "mining_rank" in t else None, "pred_boxes": preds})
    return out
