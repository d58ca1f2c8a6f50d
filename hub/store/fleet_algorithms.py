"""SQL for artifacts (package archives by sha256) and algorithms (published packages with a
review state: private -> pending -> public | rejected)."""

from __future__ import annotations

import json
import time

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database

VISIBILITIES = ("private", "pending", "public", "rejected")


def add_artifact(database: Database, sha256: str, filename: str, size: int) -> None:
    with database.write() as db:
        db.execute("INSERT OR IGNORE INTO artifacts (sha256, filename, size, created_at) VALUES (?, ?, ?, ?)",
                   [sha256, filename, size, time.time()])


def get_artifact(database: Database, sha256: str) -> dict:
    rows = list(database.db.query("SELECT * FROM artifacts WHERE sha256 = ?", [sha256]))
    if not rows:
        raise NotFound(f"artifact {sha256[:12]} not found")
    return rows[0]


def _algorithm(row: dict) -> dict:
    row = dict(row)
    row["class_names"] = json.loads(row["class_names"] or "[]")
    row["manifest"] = json.loads(row["manifest"] or "{}")
    row["label"] = f"{row['name']} v{row['version']}"
    return row


def create_algorithm(database: Database, *, name: str, title: str, description: str, project_id: int | None,
                     model_id: int | None, stage: str, sha256: str, size: int, backend: str, precision: str,
                     class_names: list[str], manifest: dict, owner_id: int | None) -> dict:
    """A new algorithm numbered after the last one of ``name``."""
    with database.write() as db:
        version = db.execute("SELECT coalesce(max(version), 0) + 1 FROM algorithms WHERE name = ?",
                             [name]).fetchone()[0]
        aid = db.execute(
            "INSERT INTO algorithms (name, version, title, description, project_id, model_id, stage, sha256, size, "
            "backend, precision, class_names, manifest, owner_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [name, version, title or name, description, project_id, model_id, stage, sha256, size, backend,
             precision, json.dumps(class_names), json.dumps(manifest), owner_id, time.time()],
        ).lastrowid
    return get_algorithm(database, aid)


def get_algorithm(database: Database, algorithm_id: int) -> dict:
    rows = list(database.db.query(
        "SELECT a.*, u.username AS owner FROM algorithms a LEFT JOIN users u ON u.id = a.owner_id WHERE a.id = ?",
        [algorithm_id]))
    if not rows:
        raise NotFound(f"algorithm {algorithm_id} not found")
    return _algorithm(rows[0])


def algorithm_by_sha(database: Database, sha256: str) -> dict | None:
    rows = list(database.db.query("SELECT id FROM algorithms WHERE sha256 = ? ORDER BY id DESC LIMIT 1", [sha256]))
    return get_algorithm(database, rows[0]["id"]) if rows else None


def list_algorithms(database: Database, *, owner_id: int | None = None, visibility: str | None = None) -> list[dict]:
    where, args = [], []
    if owner_id is not None:
        where.append("a.owner_id = ?")
        args.append(owner_id)
    if visibility is not None:
        where.append("a.visibility = ?")
        args.append(visibility)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return [_algorithm(r) for r in database.db.query(
        f"SELECT a.*, u.username AS owner FROM algorithms a LEFT JOIN users u ON u.id = a.owner_id {clause} "
        "ORDER BY a.name, a.version DESC", args)]


def set_visibility(database: Database, algorithm_id: int, visibility: str, *, note: str = "",
                   reviewer: int | None = None, expect: tuple[str, ...] = ()) -> dict:
    """Move an algorithm's review state; Conflict unless it is in one of ``expect`` (when given)."""
    if visibility not in VISIBILITIES:
        raise BadInput(f"visibility {visibility!r}: one of {', '.join(VISIBILITIES)}")
    current = get_algorithm(database, algorithm_id)
    if expect and current["visibility"] not in expect:
        raise Conflict(f"algorithm {current['label']} is {current['visibility']}, not {' or '.join(expect)}")
    with database.write() as db:
        db.execute("UPDATE algorithms SET visibility = ?, review_note = ?, reviewed_by = ? WHERE id = ?",
                   [visibility, note, reviewer, algorithm_id])
    return get_algorithm(database, algorithm_id)
