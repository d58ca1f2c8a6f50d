"""SQL for diagnosis and analysis: the evaluation and analysis caches, and the column reads they need.

* ``evaluations`` caches one result per (gt version, pred version, params hash); its per-box
  labels (TP / FP / FN / MTP / IGNORED) live in ``evaluation_labels`` so the dataset view can
  filter images by label SQL-side.
* ``version_analyses`` caches one analysis per (version, params hash).
* The column reads return plain tuples in a fixed order (by asset sha1, then annotation id) so
  callers can turn them into numpy arrays in one step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from hub.db import Database

# --- evaluation cache --------------------------------------------------------------------------


def find_evaluation(database: Database, gt_version_id: int, pred_version_id: int, params_hash: str) -> dict | None:
    """The cached evaluation row (``result`` decoded), or None."""
    rows = list(
        database.db.query(
            "SELECT * FROM evaluations WHERE gt_version_id = ? AND pred_version_id = ? AND params_hash = ?",
            [gt_version_id, pred_version_id, params_hash],
        )
    )
    if not rows:
        return None
    row = rows[0]
    row["result"] = json.loads(row["result"])
    row["params"] = json.loads(row["params"] or "{}")
    return row


def save_evaluation(
    database: Database,
    *,
    gt_version_id: int,
    pred_version_id: int,
    params_hash: str,
    params: dict,
    result: dict,
    elapsed_s: float,
    labels: Iterable[tuple[int, str, str, int, str]] = (),
) -> int:
    """Store a result and its box labels ``(annotation_id, sha1, kind, class_id, label)``; returns its id.

    When another process stored the same key first, its row is kept and that id is returned.
    """
    with database.write() as db:
        cur = db.execute(
            "INSERT INTO evaluations (gt_version_id, pred_version_id, params_hash, params, result, elapsed_s, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gt_version_id, pred_version_id, params_hash) "
            "DO NOTHING",
            [gt_version_id, pred_version_id, params_hash, json.dumps(params), json.dumps(result), elapsed_s,
             time.time()],
        )
        if cur.rowcount == 0:
            return db.execute(
                "SELECT id FROM evaluations WHERE gt_version_id = ? AND pred_version_id = ? AND params_hash = ?",
                [gt_version_id, pred_version_id, params_hash],
            ).fetchone()[0]
        eid = cur.lastrowid
        db.conn.executemany(
            "INSERT INTO evaluation_labels (evaluation_id, annotation_id, asset_sha1, kind, class_id, label) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ((eid, *row) for row in labels),
        )
    return eid


def delete_evaluation(database: Database, gt_version_id: int, pred_version_id: int, params_hash: str) -> None:
    """Drop one cached evaluation (and its labels), to compute it again."""
    with database.write() as db:
        db.execute(
            "DELETE FROM evaluations WHERE gt_version_id = ? AND pred_version_id = ? AND params_hash = ?",
            [gt_version_id, pred_version_id, params_hash],
        )


def evaluations_of(database: Database, version_id: int) -> list[dict]:
    """Cached evaluations where ``version_id`` is the prediction version (newest first, no results)."""
    return list(
        database.db.query(
            "SELECT id, gt_version_id, pred_version_id, params, elapsed_s, created_at FROM evaluations "
            "WHERE pred_version_id = ? ORDER BY created_at DESC",
            [version_id],
        )
    )


# --- reads for evaluation ----------------------------------------------------------------------


def common_sha1s(database: Database, gt_version_id: int, pred_version_id: int) -> list[str]:
    """Assets in both versions (all of one version's assets when both ids are the same), sorted."""
    if gt_version_id == pred_version_id:
        sql, params = "SELECT asset_sha1 FROM version_assets WHERE version_id = ? ORDER BY asset_sha1", [gt_version_id]
    else:
        sql = (
            "SELECT a.asset_sha1 FROM version_assets a JOIN version_assets b ON b.asset_sha1 = a.asset_sha1 "
            "AND b.version_id = ? WHERE a.version_id = ? ORDER BY a.asset_sha1"
        )
        params = [pred_version_id, gt_version_id]
    return [r[0] for r in database.db.execute(sql, params).fetchall()]


def eval_boxes(database: Database, version_id: int, kind: str, other_version_id: int | None = None) -> list[tuple]:
    """Boxes of one kind as ``(id, sha1, class_id, x1, y1, x2, y2, difficult, confidence)`` tuples.

    Ordered by asset sha1 then annotation id (file order). With ``other_version_id``, only assets
    that version also holds.
    """
    join, params = "", [version_id, kind]
    if other_version_id is not None and other_version_id != version_id:
        join = "JOIN version_assets o ON o.asset_sha1 = a.asset_sha1 AND o.version_id = ? "
        params = [other_version_id, version_id, kind]
    return database.db.execute(
        "SELECT a.id, a.asset_sha1, a.class_id, a.x1, a.y1, a.x2, a.y2, a.difficult, a.confidence "
        f"FROM annotations a {join}WHERE a.version_id = ? AND a.kind = ? ORDER BY a.asset_sha1, a.id",
        params,
    ).fetchall()


# --- labels for the dataset view ---------------------------------------------------------------


def _label_where(label: str | None, class_id: int | None) -> tuple[str, list]:
    conds, params = ["l.evaluation_id = ?", "l.asset_sha1 = va.asset_sha1"], []
    if label:
        conds.append("l.label = ?")
        params.append(label)
    if class_id is not None:
        conds.append("l.class_id = ?")
        params.append(class_id)
    return " AND ".join(conds), params


def count_labelled_assets(
    database: Database, evaluation_id: int, pred_version_id: int, label: str | None, class_id: int | None
) -> int:
    """How many assets of the evaluation hold a box with ``label`` (and ``class_id``), or any box."""
    where, params = _label_where(label, class_id)
    return database.db.execute(
        f"SELECT count(*) FROM version_assets va WHERE va.version_id = ? AND EXISTS "
        f"(SELECT 1 FROM evaluation_labels l WHERE {where})",
        [pred_version_id, evaluation_id, *params],
    ).fetchone()[0]


def page_labelled_sha1s(
    database: Database,
    evaluation_id: int,
    pred_version_id: int,
    label: str | None,
    class_id: int | None,
    *,
    offset: int = 0,
    limit: int = 24,
) -> list[str]:
    """One page (by filename) of the assets selected like :func:`count_labelled_assets`."""
    where, params = _label_where(label, class_id)
    return [
        r[0]
        for r in database.db.execute(
            "SELECT va.asset_sha1 FROM version_assets va WHERE va.version_id = ? AND EXISTS "
            f"(SELECT 1 FROM evaluation_labels l WHERE {where}) ORDER BY va.filename, va.asset_sha1 "
            "LIMIT ? OFFSET ?",
            [pred_version_id, evaluation_id, *params, int(limit), int(offset)],
        ).fetchall()
    ]


def labels_for(database: Database, evaluation_id: int, sha1s: Sequence[str]) -> dict[int, str]:
    """``annotation id -> label`` for the boxes of some assets."""
    out: dict[int, str] = {}
    for i in range(0, len(sha1s), 500):
        part = list(sha1s[i : i + 500])
        out.update(
            database.db.execute(
                "SELECT annotation_id, label FROM evaluation_labels WHERE evaluation_id = ? AND asset_sha1 IN "
                f"({','.join('?' * len(part))})",
                [evaluation_id, *part],
            ).fetchall()
        )
    return out


def label_counts(database: Database, evaluation_id: int) -> dict[str, int]:
    """Boxes per label."""
    return dict(
        database.db.execute(
            "SELECT label, count(*) FROM evaluation_labels WHERE evaluation_id = ? GROUP BY label", [evaluation_id]
        ).fetchall()
    )


def boxes_with_ids(database: Database, version_id: int, kind: str, sha1s: Sequence[str]) -> dict[str, list[dict]]:
    """Boxes of one kind of some assets, with annotation ids and class names: sha1 -> boxes."""
    out: dict[str, list[dict]] = {}
    for i in range(0, len(sha1s), 500):
        part = list(sha1s[i : i + 500])
        for r in database.db.query(
            "SELECT a.id, a.asset_sha1, c.name AS class, a.kind, a.x1, a.y1, a.x2, a.y2, a.confidence "
            "FROM annotations a JOIN classes c ON c.id = a.class_id WHERE a.version_id = ? AND a.kind = ? "
            f"AND a.asset_sha1 IN ({','.join('?' * len(part))}) ORDER BY a.id",
            [version_id, kind, *part],
        ):
            out.setdefault(r.pop("asset_sha1"), []).append(r)
    return out


def asset_rows(database: Database, version_id: int, sha1s: Sequence[str]) -> list[dict]:
    """Filename and size of some assets of a version, in the order given."""
    rows: dict[str, dict] = {}
    for i in range(0, len(sha1s), 500):
        part = list(sha1s[i : i + 500])
        for r in database.db.query(
            "SELECT va.asset_sha1 AS sha1, va.filename, s.width, s.height FROM version_assets va "
            f"JOIN assets s ON s.sha1 = va.asset_sha1 WHERE va.version_id = ? AND va.asset_sha1 IN "
            f"({','.join('?' * len(part))})",
            [version_id, *part],
        ):
            rows[r["sha1"]] = r
    return [rows[s] for s in sha1s if s in rows]


# --- analysis ----------------------------------------------------------------------------------


def image_columns(database: Database, version_id: int) -> list[tuple]:
    """Per asset: ``(size_bytes, width, height, image_quality, gt_count, pred_count)``."""
    return database.db.execute(
        "SELECT s.size_bytes, s.width, s.height, coalesce(va.image_quality, s.image_quality), va.gt_count, "
        "va.pred_count FROM version_assets va JOIN assets s ON s.sha1 = va.asset_sha1 WHERE va.version_id = ?",
        [version_id],
    ).fetchall()


def box_columns(database: Database, version_id: int, kind: str) -> list[tuple]:
    """Per box of one kind: ``(class_id, box area, image area)``."""
    return database.db.execute(
        "SELECT a.class_id, (a.x2 - a.x1) * (a.y2 - a.y1), s.width * s.height FROM annotations a "
        "JOIN assets s ON s.sha1 = a.asset_sha1 WHERE a.version_id = ? AND a.kind = ?",
        [version_id, kind],
    ).fetchall()


def classes_per_image(database: Database, version_id: int, kind: str) -> list[int]:
    """Distinct classes per asset holding at least one box of ``kind`` (assets without boxes left out)."""
    return [
        r[0]
        for r in database.db.execute(
            "SELECT count(DISTINCT class_id) FROM annotations WHERE version_id = ? AND kind = ? GROUP BY asset_sha1",
            [version_id, kind],
        ).fetchall()
    ]


def images_with_classes(database: Database, version_id: int, kind: str, class_ids: Sequence[int]) -> int:
    """How many assets hold a box of ``kind`` of one of ``class_ids``."""
    if not class_ids:
        return 0
    return database.db.execute(
        "SELECT count(DISTINCT asset_sha1) FROM annotations WHERE version_id = ? AND kind = ? AND class_id IN "
        f"({','.join('?' * len(class_ids))})",
        [version_id, kind, *class_ids],
    ).fetchone()[0]


def find_analysis(database: Database, version_id: int, params_hash: str) -> dict | None:
    row = database.db.execute(
        "SELECT result, elapsed_s, created_at FROM version_analyses WHERE version_id = ? AND params_hash = ?",
        [version_id, params_hash],
    ).fetchone()
    if row is None:
        return None
    return {"result": json.loads(row[0]), "elapsed_s": row[1], "created_at": row[2]}


def save_analysis(database: Database, version_id: int, params_hash: str, result: dict, elapsed_s: float) -> None:
    with database.write() as db:
        db.execute(
            "INSERT OR REPLACE INTO version_analyses (version_id, params_hash, result, elapsed_s, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [version_id, params_hash, json.dumps(result), elapsed_s, time.time()],
        )


# --- prediction versions -----------------------------------------------------------------------


def model_prediction_versions(database: Database, model_id: int, test_version_id: int | None = None) -> list[int]:
    """Ready versions an inference job of ``model_id`` made (of ``test_version_id``), newest first."""
    sql = (
        "SELECT id FROM dataset_versions WHERE state = 'ready' AND json_extract(source, '$.kind') = 'infer' "
        "AND json_extract(source, '$.model_id') = ?"
    )
    params: list = [model_id]
    if test_version_id is not None:
        sql += " AND EXISTS (SELECT 1 FROM json_each(parent_ids) p WHERE p.value = ?)"
        params.append(test_version_id)
    return [r[0] for r in database.db.execute(sql + " ORDER BY id DESC", params).fetchall()]


def prediction_version_ids(database: Database, project_id: int) -> list[int]:
    """Ready versions of a project holding predictions (or made by inference), oldest first."""
    return [
        r[0]
        for r in database.db.execute(
            "SELECT id FROM dataset_versions WHERE project_id = ? AND state = 'ready' AND "
            "(pred_boxes > 0 OR json_extract(source, '$.kind') = 'infer') ORDER BY id",
            [project_id],
        ).fetchall()
    ]
