"""SQL for prediction versions: a copy of a dataset version whose ``pred`` boxes come from a model."""

from __future__ import annotations

from collections.abc import Iterable

from hub.store import assets as assets_store
from hub.store import datasets as datasets_store


def fill_prediction_version(
    db, *, src_version_id: int, dst_version_id: int, rows: Iterable[tuple], report: dict
) -> None:
    """Copy ``src``'s images and GT into ``dst``, replace its predictions with ``rows``, mark ready.

    ``rows``: ``(asset_sha1, class_id, x1, y1, x2, y2, confidence)``. Call inside ``Database.write()``.
    """
    assets_store.start_pick(db)
    assets_store.pick_where(db, src_version_id)
    assets_store.copy_picked(db, dst_version_id)
    replace_predictions(db, dst_version_id, rows)
    datasets_store.finish_version(db, dst_version_id, report)


def replace_predictions(db, version_id: int, rows: Iterable[tuple], tags: str = "{}") -> None:
    """Replace a version's ``pred`` boxes with ``rows`` ``(asset_sha1, class_id, x1, y1, x2, y2, confidence)``
    (each with box tags ``tags``, JSON) and recount them per asset. Call inside ``Database.write()``."""
    db.execute("DELETE FROM annotations WHERE version_id = ? AND kind = 'pred'", [version_id])
    db.conn.executemany(
        "INSERT INTO annotations (version_id, asset_sha1, kind, class_id, x1, y1, x2, y2, confidence, tags) "
        "VALUES (?, ?, 'pred', ?, ?, ?, ?, ?, ?, ?)",
        [(version_id, *r, tags) for r in rows],
    )
    db.execute(
        "UPDATE version_assets SET pred_count = (SELECT count(*) FROM annotations a WHERE a.version_id = "
        "version_assets.version_id AND a.asset_sha1 = version_assets.asset_sha1 AND a.kind = 'pred') "
        "WHERE version_id = ?",
        [version_id],
    )
