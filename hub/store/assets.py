"""Assets (images by sha1), version membership and annotations: bulk writes, pages, SQL-side copies.

Version operations never move rows through Python: they fill the temporary ``_pick`` table
(asset sha1 -> the version to take it from) and :func:`copy_picked` copies membership and
annotations with two ``INSERT ... SELECT`` statements.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence

from detkit.errors import BadInput
from hub.db import Database

BATCH = 2000
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

_ANN_COLS = "kind, class_id, x1, y1, x2, y2, difficult, truncated, pose, confidence, box_quality, tags"


def _chunks(rows: Iterable, size: int = BATCH):
    batch = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_version_rows(
    db,
    version_id: int,
    records: Sequence,
    class_id_of: Callable[[str], int | None],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Bulk-insert ingested records (``AssetRecord``-like) into a version. Call inside ``write()``.

    ``class_id_of(name)`` maps a resolved main class name to its id; boxes whose class maps to
    None are dropped (the ``ignore`` strategy already removed them from the records).
    """
    now = time.time()
    # in key order: the b-tree is filled left to right instead of at random places
    db.conn.executemany(
        "INSERT OR IGNORE INTO assets (sha1, format, width, height, size_bytes, image_quality, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        sorted((r.sha1, r.format, r.width, r.height, r.size_bytes, r.image_quality, now) for r in records),
    )
    for batch in _chunks(records):
        va_rows, ann_rows = [], []
        for r in batch:
            kinds = (("gt", r.gt), ("pred", r.pred))
            counts = {"gt": 0, "pred": 0}
            for kind, ann in kinds:
                if ann is None:
                    continue
                for b in ann.boxes:
                    cid = class_id_of(b.name)
                    if cid is None:
                        continue
                    counts[kind] += 1
                    ann_rows.append(
                        (
                            version_id,
                            r.sha1,
                            kind,
                            cid,
                            float(b.x1),
                            float(b.y1),
                            float(b.x2),
                            float(b.y2),
                            int(bool(b.difficult)),
                            int(bool(b.truncated)),
                            b.pose or "",
                            b.confidence,
                            b.box_quality,
                            json.dumps(b.tags) if b.tags else "{}",
                        )
                    )
            tags = (r.gt.tags if r.gt is not None and r.gt.tags else None) or (
                r.pred.tags if r.pred is not None else None
            )
            va_rows.append(
                (
                    version_id,
                    r.sha1,
                    r.filename,
                    json.dumps(tags) if tags else "{}",
                    r.image_quality,
                    counts["gt"],
                    counts["pred"],
                )
            )
        # one image may appear twice in a zip: the first one wins (the report lists duplicates)
        db.conn.executemany(
            "INSERT OR IGNORE INTO version_assets (version_id, asset_sha1, filename, tags, image_quality, "
            "gt_count, pred_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
            va_rows,
        )
        db.conn.executemany(
            f"INSERT INTO annotations (version_id, asset_sha1, {_ANN_COLS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ann_rows,
        )
        if progress:
            progress(len(batch))


def check_tag_key(key: str) -> str:
    if not isinstance(key, str) or not _TAG_KEY.match(key):
        raise BadInput(f"tag key {key!r}: 1-64 of letters, digits, '_', '.', '-'")
    return key


def _tag_conditions(column: str, tags: dict[str, str] | None) -> tuple[list[str], list]:
    conds, params = [], []
    for key, value in (tags or {}).items():
        path = f'$."{check_tag_key(key)}"'
        if value in (None, "", "*"):
            conds.append(f"json_type({column}, ?) IS NOT NULL")
            params.append(path)
        else:
            conds.append(f"json_extract({column}, ?) = ?")
            params.extend([path, str(value)])
    return conds, params


def asset_where(
    version_id: int,
    *,
    classes_in: Sequence[int] = (),
    classes_out: Sequence[int] = (),
    asset_tags: dict[str, str] | None = None,
    box_tags: dict[str, str] | None = None,
    kind: str = "gt",
) -> tuple[str, list]:
    """SQL conditions on ``version_assets va`` of ``version_id`` selecting assets by classes and tags.

    Box conditions are uncorrelated ``IN (SELECT ...)`` sets, evaluated once through the
    ``(version_id, kind, class_id)`` index: a correlated EXISTS per asset is ~1000x slower at 100k boxes.
    """
    conds: list[str] = []
    params: list = []
    ann = "SELECT asset_sha1 FROM annotations a WHERE a.version_id = ? AND a.kind = ?"
    if classes_in:
        conds.append(f"va.asset_sha1 IN ({ann} AND a.class_id IN ({','.join('?' * len(classes_in))}))")
        params.extend([version_id, kind, *classes_in])
    if classes_out:
        conds.append(f"va.asset_sha1 NOT IN ({ann} AND a.class_id IN ({','.join('?' * len(classes_out))}))")
        params.extend([version_id, kind, *classes_out])
    tc, tp = _tag_conditions("va.tags", asset_tags)
    conds += tc
    params += tp
    bc, bp = _tag_conditions("a.tags", box_tags)
    if bc:
        conds.append(f"va.asset_sha1 IN ({ann} AND {' AND '.join(bc)})")
        params.extend([version_id, kind, *bp])
    return (" AND ".join(conds) or "1"), params


def count_assets(database: Database, version_id: int, where: str = "1", params: Sequence = ()) -> int:
    return database.db.execute(
        f"SELECT count(*) FROM version_assets va WHERE va.version_id = ? AND {where}", [version_id, *params]
    ).fetchone()[0]


def page_assets(
    database: Database,
    version_id: int,
    *,
    where: str = "1",
    params: Sequence = (),
    offset: int = 0,
    limit: int = 50,
) -> list[dict]:
    """One page of a version's assets (with their annotations), ordered by filename."""
    rows = list(
        database.db.query(
            "SELECT va.asset_sha1 AS sha1, va.filename, va.tags, va.image_quality, va.gt_count, va.pred_count, "
            "s.format, s.width, s.height, s.size_bytes FROM version_assets va JOIN assets s ON s.sha1 = va.asset_sha1 "
            f"WHERE va.version_id = ? AND {where} ORDER BY va.filename, va.asset_sha1 LIMIT ? OFFSET ?",
            [version_id, *params, int(limit), int(offset)],
        )
    )
    boxes = annotations_for(database, version_id, [r["sha1"] for r in rows])
    for r in rows:
        r["tags"] = json.loads(r["tags"] or "{}")
        r["boxes"] = boxes.get(r["sha1"], [])
    return rows


def annotations_for(database: Database, version_id: int, sha1s: Sequence[str]) -> dict[str, list[dict]]:
    """Annotations of some assets of a version: sha1 -> list of box dicts (with class names)."""
    out: dict[str, list[dict]] = {}
    if not sha1s:
        return out
    for i in range(0, len(sha1s), 500):
        part = list(sha1s[i : i + 500])
        for r in database.db.query(
            f"SELECT a.asset_sha1, c.name AS class, {_ANN_COLS.replace('class_id, ', '')} FROM annotations a "
            "JOIN classes c ON c.id = a.class_id "
            f"WHERE a.version_id = ? AND a.asset_sha1 IN ({','.join('?' * len(part))}) ORDER BY a.id",
            [version_id, *part],
        ):
            r["tags"] = json.loads(r["tags"] or "{}")
            r["difficult"] = bool(r["difficult"])
            r["truncated"] = bool(r["truncated"])
            out.setdefault(r.pop("asset_sha1"), []).append(r)
    return out


def iter_version(database: Database, version_id: int, batch: int = 500):
    """Every asset of a version with its annotations, in filename order, a batch at a time."""
    offset = 0
    while True:
        rows = page_assets(database, version_id, offset=offset, limit=batch)
        if not rows:
            return
        yield from rows
        offset += len(rows)


def version_sha1s(database: Database, version_id: int, where: str = "1", params: Sequence = ()) -> list[str]:
    """The sha1s of a version's assets (sorted), optionally filtered."""
    return [
        r[0]
        for r in database.db.execute(
            f"SELECT va.asset_sha1 FROM version_assets va WHERE va.version_id = ? AND {where} "
            "ORDER BY va.asset_sha1",
            [version_id, *params],
        ).fetchall()
    ]


def asset_tag_keys(database: Database, version_id: int) -> list[str]:
    return [
        r[0]
        for r in database.db.execute(
            "SELECT DISTINCT j.key FROM version_assets va, json_each(va.tags) j WHERE va.version_id = ? ORDER BY 1",
            [version_id],
        ).fetchall()
    ]


def asset_exists(database: Database, sha1: str) -> dict | None:
    rows = list(database.db.query("SELECT * FROM assets WHERE sha1 = ?", [sha1]))
    return rows[0] if rows else None


def known_sha1s(database: Database, sha1s: Iterable[str]) -> set[str]:
    """Which of ``sha1s`` have an ``assets`` row (to tell orphan files from shared ones)."""
    sha1s = list(sha1s)
    found: set[str] = set()
    for i in range(0, len(sha1s), 500):
        part = sha1s[i : i + 500]
        found.update(
            r[0]
            for r in database.db.execute(
                f"SELECT sha1 FROM assets WHERE sha1 IN ({','.join('?' * len(part))})", part
            ).fetchall()
        )
    return found


# --- SQL-side copies for version operations ----------------------------------------------------


def start_pick(db) -> None:
    """(Re)create the temporary pick table. Call inside ``write()``."""
    db.execute("DROP TABLE IF EXISTS temp._pick")
    db.execute("CREATE TEMP TABLE _pick (asset_sha1 TEXT PRIMARY KEY, src INTEGER NOT NULL) WITHOUT ROWID")


def pick_where(db, src_version: int, where: str = "1", params: Sequence = ()) -> int:
    """Pick the assets of ``src_version`` matching ``where`` (first pick of an asset wins)."""
    return db.execute(
        "INSERT OR IGNORE INTO temp._pick (asset_sha1, src) "
        f"SELECT va.asset_sha1, va.version_id FROM version_assets va WHERE va.version_id = ? AND {where}",
        [src_version, *params],
    ).rowcount


def pick_sha1s(db, src_version: int, sha1s: Iterable[str]) -> None:
    db.conn.executemany(
        "INSERT OR IGNORE INTO temp._pick (asset_sha1, src) VALUES (?, ?)", [(s, src_version) for s in sha1s]
    )


def overlap(db, version_a: int, version_b: int) -> int:
    """How many assets two versions share."""
    return db.execute(
        "SELECT count(*) FROM version_assets a JOIN version_assets b ON b.asset_sha1 = a.asset_sha1 "
        "WHERE a.version_id = ? AND b.version_id = ?",
        [version_a, version_b],
    ).fetchone()[0]


def copy_picked(db, dst_version: int) -> None:
    """Copy membership and annotations of the picked assets into ``dst_version``, then drop the picks."""
    db.execute(
        "INSERT INTO version_assets (version_id, asset_sha1, filename, tags, image_quality, gt_count, pred_count) "
        "SELECT ?, va.asset_sha1, va.filename, va.tags, va.image_quality, va.gt_count, va.pred_count "
        "FROM temp._pick p JOIN version_assets va ON va.version_id = p.src AND va.asset_sha1 = p.asset_sha1",
        [dst_version],
    )
    db.execute(
        f"INSERT INTO annotations (version_id, asset_sha1, {_ANN_COLS}) "
        f"SELECT ?, a.asset_sha1, {', '.join('a.' + c.strip() for c in _ANN_COLS.split(','))} "
        "FROM temp._pick p JOIN annotations a ON a.version_id = p.src AND a.asset_sha1 = p.asset_sha1 ORDER BY a.id",
        [dst_version],
    )
    db.execute("DROP TABLE temp._pick")


# --- image quality computed after import ------------------------------------------------------------


def assets_missing_quality(database: Database, version_id: int) -> list[str]:
    """sha1 of the version's images with no quality score at all (none given, none computed yet)."""
    return [r[0] for r in database.db.execute(
        "SELECT s.sha1 FROM version_assets va JOIN assets s ON s.sha1 = va.asset_sha1 "
        "WHERE va.version_id = ? AND va.image_quality IS NULL AND s.image_quality IS NULL ORDER BY s.sha1",
        [version_id],
    ).fetchall()]


def set_asset_quality(database: Database, scores: Iterable[tuple[str, float]]) -> None:
    """Store computed ``(sha1, score)`` pairs as the assets' own quality (a given score is never replaced)."""
    with database.write() as db:
        db.conn.executemany("UPDATE assets SET image_quality = ? WHERE sha1 = ? AND image_quality IS NULL",
                            [(q, sha1) for sha1, q in scores])
