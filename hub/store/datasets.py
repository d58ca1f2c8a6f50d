"""Dataset groups and their immutable versions (state, source, parents, report, progress, counts)."""

from __future__ import annotations

import json
import time

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database

STATES = ("importing", "ready", "failed")
_JSON = {"source": {}, "parent_ids": [], "report": None}


def _check_group_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or "/" in name:
        raise BadInput(f"dataset name {name!r}: 1-100 characters, no '/'")
    return name


def get_or_create_group(database: Database, project_id: int, name: str, description: str = "") -> dict:
    """The project's dataset group called ``name``, created if missing."""
    name = _check_group_name(name)
    with database.write() as db:
        row = db.execute(
            "SELECT id FROM dataset_groups WHERE project_id = ? AND name = ?", [project_id, name]
        ).fetchone()
        if row:
            gid = row[0]
        else:
            gid = db.execute(
                "INSERT INTO dataset_groups (project_id, name, description, created_at) VALUES (?, ?, ?, ?)",
                [project_id, name, description, time.time()],
            ).lastrowid
    return get_group(database, gid)


def get_group(database: Database, group_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM dataset_groups WHERE id = ?", [group_id]))
    if not rows:
        raise NotFound(f"dataset {group_id} not found")
    row = rows[0]
    row["public"] = bool(row["public"])
    return row


def set_group_public(database: Database, group_id: int, public: bool) -> dict:
    get_group(database, group_id)
    with database.write() as db:
        db.execute("UPDATE dataset_groups SET public = ? WHERE id = ?", [1 if public else 0, group_id])
    return get_group(database, group_id)


def create_version(
    database: Database,
    group_id: int,
    *,
    source: dict,
    operation: str = "import",
    parent_ids: list[int] = (),
    note: str = "",
    created_by: int | None = None,
) -> dict:
    """A new version (state ``importing``) numbered after the group's last one."""
    group = get_group(database, group_id)
    with database.write() as db:
        number = db.execute(
            "SELECT coalesce(max(number), 0) + 1 FROM dataset_versions WHERE group_id = ?", [group_id]
        ).fetchone()[0]
        vid = db.execute(
            "INSERT INTO dataset_versions (group_id, project_id, number, state, source, parent_ids, operation, "
            "note, created_by, created_at, progress_message) VALUES (?, ?, ?, 'importing', ?, ?, ?, ?, ?, ?, ?)",
            [
                group_id,
                group["project_id"],
                number,
                json.dumps(source),
                json.dumps(list(parent_ids)),
                operation,
                note,
                created_by,
                time.time(),
                "queued",
            ],
        ).lastrowid
    return get_version(database, vid)


def set_progress(database: Database, version_id: int, progress: float, message: str = "") -> None:
    """Record how far an import or operation is (0..1)."""
    with database.write() as db:
        db.execute(
            "UPDATE dataset_versions SET progress = ?, progress_message = ? WHERE id = ? AND state = 'importing'",
            [max(0.0, min(1.0, float(progress))), message[:500], version_id],
        )


def finish_version(db, version_id: int, report: dict) -> None:
    """Mark a version ready: counts computed SQL-side from its rows. Call inside ``Database.write()``."""
    db.execute("DELETE FROM version_class_counts WHERE version_id = ?", [version_id])
    db.execute(
        "INSERT INTO version_class_counts (version_id, kind, class_id, boxes, images) "
        "SELECT version_id, kind, class_id, count(*), count(DISTINCT asset_sha1) FROM annotations "
        "WHERE version_id = ? GROUP BY kind, class_id",
        [version_id],
    )
    images, gt, pred = db.execute(
        "SELECT count(*), coalesce(sum(gt_count), 0), coalesce(sum(pred_count), 0) FROM version_assets "
        "WHERE version_id = ?",
        [version_id],
    ).fetchone()
    db.execute(
        "UPDATE dataset_versions SET state = 'ready', report = ?, images = ?, gt_boxes = ?, pred_boxes = ?, "
        "progress = 1, progress_message = 'done', finished_at = ? WHERE id = ?",
        [json.dumps(report), images, gt, pred, time.time(), version_id],
    )


def fail_version(database: Database, version_id: int, error: str, report: dict | None = None) -> None:
    """Mark a version failed and drop every row of its own (no partial version remains)."""
    with database.write() as db:
        db.execute("DELETE FROM annotations WHERE version_id = ?", [version_id])
        db.execute("DELETE FROM version_assets WHERE version_id = ?", [version_id])
        db.execute("DELETE FROM version_class_counts WHERE version_id = ?", [version_id])
        db.execute(
            "UPDATE dataset_versions SET state = 'failed', error = ?, report = ?, progress_message = 'failed', "
            "finished_at = ? WHERE id = ?",
            [error, json.dumps(report) if report is not None else None, time.time(), version_id],
        )


def _decode(row: dict) -> dict:
    row = dict(row)
    for key, default in _JSON.items():
        raw = row.get(key)
        row[key] = json.loads(raw) if raw else default
    return row


_VERSION_SELECT = (
    "SELECT v.*, g.name AS group_name, g.public AS public, p.name AS project_name FROM dataset_versions v "
    "JOIN dataset_groups g ON g.id = v.group_id JOIN projects p ON p.id = v.project_id"
)


def get_version(database: Database, version_id: int) -> dict:
    """One version with its group and project names, decoded JSON fields and per-class counts."""
    rows = list(database.db.query(f"{_VERSION_SELECT} WHERE v.id = ?", [version_id]))
    if not rows:
        raise NotFound(f"dataset version {version_id} not found")
    row = _decode(rows[0])
    row["public"] = bool(row["public"])
    row["name"] = f"{row['group_name']} v{row['number']}"
    row["class_counts"] = class_counts(database, version_id)
    return row


def require_ready(database: Database, version_id: int) -> dict:
    v = get_version(database, version_id)
    if v["state"] != "ready":
        raise Conflict(f"dataset version {version_id} is {v['state']}, not ready")
    return v


def class_counts(database: Database, version_id: int) -> dict[str, dict[str, dict[str, int]]]:
    """``{"gt": {class: {"boxes", "images"}}, "pred": {...}}`` from the stored counts."""
    out: dict[str, dict[str, dict[str, int]]] = {"gt": {}, "pred": {}}
    for kind, name, boxes, images in database.db.execute(
        "SELECT k.kind, c.name, k.boxes, k.images FROM version_class_counts k JOIN classes c ON c.id = k.class_id "
        "WHERE k.version_id = ? ORDER BY c.name",
        [version_id],
    ).fetchall():
        out[kind][name] = {"boxes": boxes, "images": images}
    return out


def list_versions(database: Database, *, project_id: int | None = None, group_id: int | None = None) -> list[dict]:
    where, params = [], []
    if project_id is not None:
        where.append("v.project_id = ?")
        params.append(project_id)
    if group_id is not None:
        where.append("v.group_id = ?")
        params.append(group_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    out = []
    for r in database.db.query(f"{_VERSION_SELECT} {clause} ORDER BY g.name, v.number", params):
        r = _decode(r)
        r["public"] = bool(r["public"])
        r["name"] = f"{r['group_name']} v{r['number']}"
        r.pop("report", None)
        out.append(r)
    return out


def list_groups(database: Database, project_id: int) -> list[dict]:
    """The project's dataset groups, each with its versions (newest last)."""
    groups = [
        {**g, "public": bool(g["public"]), "versions": []}
        for g in database.db.query("SELECT * FROM dataset_groups WHERE project_id = ? ORDER BY name", [project_id])
    ]
    by_id = {g["id"]: g for g in groups}
    for v in list_versions(database, project_id=project_id):
        by_id[v["group_id"]]["versions"].append(v)
    return groups


def list_public_versions(database: Database) -> list[dict]:
    """Ready versions of groups an admin marked public (importable into any project)."""
    return [
        {**_decode(r), "name": f"{r['group_name']} v{r['number']}"}
        for r in database.db.query(
            f"{_VERSION_SELECT} WHERE g.public = 1 AND v.state = 'ready' ORDER BY g.name, v.number"
        )
    ]
