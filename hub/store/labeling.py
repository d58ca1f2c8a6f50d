"""SQL for labeling tasks: the task rows, assignees, each image's labels and lease, the labeled version."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from detkit.errors import NotFound
from hub.db import Database
from hub.store import datasets as datasets_store


def _task(row: dict) -> dict:
    row = dict(row)
    row["classes"] = json.loads(row.get("classes") or "[]")
    row["backend_state"] = json.loads(row.get("backend_state") or "{}")
    row["pre_annotations"] = bool(row["pre_annotations"])
    return row


def create_task(database: Database, *, project_id: int, version_id: int, name: str, classes: list[str],
                backend: str, pre_annotations: bool, assignee_ids: Sequence[int], created_by: int | None) -> int:
    now = time.time()
    with database.write() as db:
        cur = db.execute(
            "INSERT INTO labeling_tasks (project_id, version_id, name, classes, backend, state, pre_annotations, "
            "created_by, created_at) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            [project_id, version_id, name, json.dumps(classes), backend, int(pre_annotations), created_by, now],
        )
        task_id = cur.lastrowid
        db.execute("INSERT INTO labeling_images (task_id, asset_sha1) SELECT ?, asset_sha1 FROM version_assets "
                   "WHERE version_id = ? ORDER BY asset_sha1", [task_id, version_id])
        db.conn.executemany("INSERT OR IGNORE INTO labeling_assignees (task_id, user_id) VALUES (?, ?)",
                            [(task_id, u) for u in assignee_ids])
    return task_id


def get_task(database: Database, task_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM labeling_tasks WHERE id = ?", [task_id]))
    if not rows:
        raise NotFound(f"labeling task {task_id} not found")
    task = _task(rows[0])
    total, done = database.db.execute(
        "SELECT count(*), coalesce(sum(state = 'done'), 0) FROM labeling_images WHERE task_id = ?", [task_id]
    ).fetchone()
    task["images_total"], task["images_done"] = total, done
    task["assignees"] = [r[0] for r in database.db.execute(
        "SELECT u.username FROM labeling_assignees a JOIN users u ON u.id = a.user_id WHERE a.task_id = ? "
        "ORDER BY u.username", [task_id]).fetchall()]
    return task


def list_task_ids(database: Database, project_id: int | None = None, states: Sequence[str] | None = None) -> list[int]:
    where, args = [], []
    if project_id is not None:
        where.append("project_id = ?")
        args.append(project_id)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        args += list(states)
    sql = "SELECT id FROM labeling_tasks" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
    return [r[0] for r in database.db.execute(sql, args).fetchall()]


def update_task(database: Database, task_id: int, **fields) -> None:
    for key in ("classes", "backend_state"):
        if key in fields:
            fields[key] = json.dumps(fields[key])
    sets = ", ".join(f"{k} = ?" for k in fields)
    with database.write() as db:
        db.execute(f"UPDATE labeling_tasks SET {sets} WHERE id = ?", [*fields.values(), task_id])


def delete_task(database: Database, task_id: int) -> None:
    with database.write() as db:
        db.execute("DELETE FROM labeling_images WHERE task_id = ?", [task_id])
        db.execute("DELETE FROM labeling_assignees WHERE task_id = ?", [task_id])
        db.execute("DELETE FROM labeling_tasks WHERE id = ?", [task_id])


def _image(row) -> dict:
    (sha1, state, boxes, updated_by, updated_at, lease_user, lease_until, width, height, filename, tags,
     fmt, quality) = row
    return {"sha1": sha1, "state": state, "saved": json.loads(boxes) if boxes is not None else None,
            "updated_by": updated_by, "updated_at": updated_at, "lease_user_id": lease_user,
            "lease_until": lease_until, "width": width, "height": height, "filename": filename,
            "tags": json.loads(tags or "{}"), "format": fmt, "image_quality": quality}


_IMAGE_SQL = (
    "SELECT li.asset_sha1, li.state, li.boxes, li.updated_by, li.updated_at, li.lease_user_id, li.lease_until, "
    "s.width, s.height, va.filename, va.tags, s.format, coalesce(va.image_quality, s.image_quality) "
    "FROM labeling_images li JOIN labeling_tasks t ON t.id = li.task_id "
    "JOIN assets s ON s.sha1 = li.asset_sha1 "
    "JOIN version_assets va ON va.version_id = t.version_id AND va.asset_sha1 = li.asset_sha1 WHERE li.task_id = ?"
)


def task_images(database: Database, task_id: int, *, offset: int = 0, limit: int | None = None) -> list[dict]:
    rows = database.db.execute(_IMAGE_SQL + " ORDER BY li.asset_sha1 LIMIT ? OFFSET ?",
                               [task_id, -1 if limit is None else limit, offset]).fetchall()
    return [_image(r) for r in rows]


def task_image(database: Database, task_id: int, sha1: str) -> dict:
    row = database.db.execute(_IMAGE_SQL + " AND li.asset_sha1 = ?", [task_id, sha1]).fetchone()
    if row is None:
        raise NotFound(f"image {sha1} is not in labeling task {task_id}")
    return _image(row)


_OPEN = "task_id IN (SELECT id FROM labeling_tasks WHERE id = ? AND state IN ('open', 'in_progress'))"


def save_image(database: Database, task_id: int, sha1: str, boxes: list[dict], done: bool,
               user_id: int | None, lease_ttl: float = 0) -> bool:
    """Save one image's boxes; the saver's lease (if the image is free or theirs) lives ``lease_ttl`` more seconds.
    False (nothing written) when the task is no longer open."""
    now = time.time()
    with database.write() as db:
        n = db.execute(f"UPDATE labeling_images SET boxes = ?, state = ?, updated_by = ?, updated_at = ? "
                       f"WHERE task_id = ? AND asset_sha1 = ? AND {_OPEN}",
                       [json.dumps(boxes), "done" if done else "pending", user_id, now, task_id, sha1,
                        task_id]).rowcount
        if n and user_id is not None and lease_ttl > 0:
            db.execute("UPDATE labeling_images SET lease_user_id = ?, lease_until = ? WHERE task_id = ? "
                       "AND asset_sha1 = ? AND (lease_user_id IS NULL OR lease_user_id = ? OR lease_until < ?)",
                       [user_id, now + lease_ttl, task_id, sha1, user_id, now])
        db.execute("UPDATE labeling_tasks SET state = 'in_progress' WHERE id = ? AND state = 'open'", [task_id])
    return n == 1


def save_many(database: Database, task_id: int, labels: dict[str, list[dict]], user_id: int | None) -> bool:
    """Save several images' labels as done in one transaction (imports and syncs: all or nothing); False (nothing
    written) when the task is no longer open."""
    now = time.time()
    with database.write() as db:
        row = db.execute("SELECT state FROM labeling_tasks WHERE id = ?", [task_id]).fetchone()
        if row is None or row[0] not in ("open", "in_progress"):
            return False
        db.conn.executemany(
            "UPDATE labeling_images SET boxes = ?, state = 'done', updated_by = ?, updated_at = ? "
            "WHERE task_id = ? AND asset_sha1 = ?",
            [(json.dumps(b), user_id, now, task_id, s) for s, b in labels.items()])
        if labels:
            db.execute("UPDATE labeling_tasks SET state = 'in_progress' WHERE id = ? AND state = 'open'", [task_id])
    return True


def mark_done(db, task_id: int, version_id: int) -> bool:
    """The task done with its labeled version, only from open / in progress. Call inside ``Database.write()``."""
    return db.execute("UPDATE labeling_tasks SET state = 'done', result_version_id = ?, finished_at = ? "
                      "WHERE id = ? AND state IN ('open', 'in_progress')",
                      [version_id, time.time(), task_id]).rowcount == 1


def lease_next(database: Database, task_id: int, user_id: int, after: str | None, ttl: float) -> str | None:
    """Lease the next pending image (after ``after`` in sha1 order, wrapping) not leased by someone else."""
    now = time.time()
    with database.write() as db:
        db.execute("UPDATE labeling_images SET lease_user_id = NULL, lease_until = NULL "
                   "WHERE task_id = ? AND lease_user_id = ?", [task_id, user_id])
        free = ("task_id = ? AND state = 'pending' AND (lease_user_id IS NULL OR lease_until < ? "
                "OR lease_user_id = ?)")
        row = None
        if after:
            row = db.execute(f"SELECT asset_sha1 FROM labeling_images WHERE {free} AND asset_sha1 > ? "
                             "ORDER BY asset_sha1 LIMIT 1", [task_id, now, user_id, after]).fetchone()
        if row is None:
            row = db.execute(f"SELECT asset_sha1 FROM labeling_images WHERE {free} ORDER BY asset_sha1 LIMIT 1",
                             [task_id, now, user_id]).fetchone()
        if row is None:
            return None
        db.execute("UPDATE labeling_images SET lease_user_id = ?, lease_until = ? WHERE task_id = ? AND asset_sha1 = ?",
                   [user_id, now + ttl, task_id, row[0]])
    return row[0]


def pred_boxes(database: Database, version_id: int, sha1s: Sequence[str]) -> dict[str, list[dict]]:
    """The version's ``pred`` boxes of some assets (class names, confidence)."""
    out: dict[str, list[dict]] = {}
    for i in range(0, len(sha1s), 500):
        part = list(sha1s[i:i + 500])
        for sha1, name, x1, y1, x2, y2, conf in database.db.execute(
                "SELECT a.asset_sha1, c.name, a.x1, a.y1, a.x2, a.y2, a.confidence FROM annotations a "
                "JOIN classes c ON c.id = a.class_id WHERE a.version_id = ? AND a.kind = 'pred' "
                f"AND a.asset_sha1 IN ({','.join('?' * len(part))}) ORDER BY a.id", [version_id, *part]):
            out.setdefault(sha1, []).append({"x1": x1, "y1": y1, "x2": x2, "y2": y2, "class": name,
                                             "confidence": conf, "source": "prediction"})
    return out


def fill_labeled_version(db, dst_version_id: int, src_version_id: int, rows: Sequence[tuple], report: dict) -> None:
    """The labeled version: the source's images and asset tags, GT = ``rows`` ``(sha1, class_id, x1, y1, x2, y2,
    tags_json)``. Call inside ``Database.write()``."""
    db.execute(
        "INSERT INTO version_assets (version_id, asset_sha1, filename, tags, image_quality, gt_count, pred_count) "
        "SELECT ?, asset_sha1, filename, tags, image_quality, 0, 0 FROM version_assets WHERE version_id = ?",
        [dst_version_id, src_version_id])
    db.conn.executemany(
        "INSERT INTO annotations (version_id, asset_sha1, kind, class_id, x1, y1, x2, y2, tags) "
        "VALUES (?, ?, 'gt', ?, ?, ?, ?, ?, ?)", [(dst_version_id, *r) for r in rows])
    db.execute(
        "UPDATE version_assets SET gt_count = (SELECT count(*) FROM annotations a WHERE a.version_id = "
        "version_assets.version_id AND a.asset_sha1 = version_assets.asset_sha1 AND a.kind = 'gt') "
        "WHERE version_id = ?", [dst_version_id])
    datasets_store.finish_version(db, dst_version_id, report)
