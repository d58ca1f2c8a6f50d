"""Projects: name, description, training targets (classes), archive flag."""

from __future__ import annotations

import time

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database
from hub.store import classes as class_store


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise BadInput(f"project name {name!r}: 1-100 characters")
    if name.isdigit():
        raise BadInput(f"project name {name!r}: must not be only digits (ids are numbers)")
    return name


def _target_ids(db, targets: list[str]) -> list[int]:
    ids: list[int] = []
    for t in targets:
        cid = class_store._class_id(db, t)
        if cid not in ids:
            ids.append(cid)
    return ids


def _set_targets(db, project_id: int, ids: list[int]) -> None:
    db.execute("DELETE FROM project_targets WHERE project_id = ?", [project_id])
    for pos, cid in enumerate(ids):
        db.execute(
            "INSERT INTO project_targets (project_id, class_id, position) VALUES (?, ?, ?)",
            [project_id, cid, pos],
        )


def create_project(
    database: Database, name: str, *, description: str = "", targets: list[str] = (), owner_id: int | None = None,
    add_missing: bool = False,
) -> dict:
    """Create a project; ``targets`` are class names or aliases that must exist, or with
    ``add_missing`` are added as new classes (the result's ``added_classes`` lists them)."""
    name = _check_name(name)
    added: list[str] = []
    with database.write() as db:
        if db.execute("SELECT 1 FROM projects WHERE name = ?", [name]).fetchone():
            raise Conflict(f"project {name!r} already exists")
        if add_missing:
            known = {r[0] for r in db.execute("SELECT name FROM class_names").fetchall()}
            added = list(dict.fromkeys(n for n in (class_store.normalize(t) for t in targets) if n not in known))
            class_store.ensure_classes(database, added)
        ids = _target_ids(db, list(targets))
        now = time.time()
        pid = db.execute(
            "INSERT INTO projects (name, description, owner_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            [name, description or "", owner_id, now, now],
        ).lastrowid
        _set_targets(db, pid, ids)
    project = get_project(database, pid)
    if add_missing:
        project["added_classes"] = added
    return project


def update_project(
    database: Database,
    project_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    targets: list[str] | None = None,
    archived: bool | None = None,
) -> dict:
    """Edit a project's fields; ``None`` leaves a field as it is."""
    with database.write() as db:
        get_project(database, project_id)
        sets: dict = {"updated_at": time.time()}
        if name is not None:
            name = _check_name(name)
            other = db.execute("SELECT id FROM projects WHERE name = ? AND id != ?", [name, project_id]).fetchone()
            if other:
                raise Conflict(f"project {name!r} already exists")
            sets["name"] = name
        if description is not None:
            sets["description"] = description
        if archived is not None:
            sets["archived"] = 1 if archived else 0
        db.execute(
            f"UPDATE projects SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
            [*sets.values(), project_id],
        )
        if targets is not None:
            _set_targets(db, project_id, _target_ids(db, targets))
    return get_project(database, project_id)


def _targets(database: Database, project_id: int) -> list[str]:
    return [
        r[0]
        for r in database.db.execute(
            "SELECT c.name FROM project_targets t JOIN classes c ON c.id = t.class_id "
            "WHERE t.project_id = ? ORDER BY t.position",
            [project_id],
        ).fetchall()
    ]


def get_project(database: Database, project_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM projects WHERE id = ?", [project_id]))
    if not rows:
        raise NotFound(f"project {project_id} not found")
    return _full(database, rows[0])


def _full(database: Database, row: dict) -> dict:
    row = dict(row)
    row["archived"] = bool(row["archived"])
    row["targets"] = _targets(database, row["id"])
    counts = database.db.execute(
        "SELECT count(DISTINCT g.id), count(v.id) FROM dataset_groups g "
        "LEFT JOIN dataset_versions v ON v.group_id = g.id WHERE g.project_id = ?",
        [row["id"]],
    ).fetchone()
    row["dataset_groups"], row["dataset_versions"] = counts
    return row


def find_project(database: Database, ref: str | int) -> dict:
    """A project by id or by name (what ``--project`` takes)."""
    text = str(ref).strip()
    if text.isdigit():
        return get_project(database, int(text))
    rows = list(database.db.query("SELECT * FROM projects WHERE name = ?", [text]))
    if not rows:
        raise NotFound(f"project {text!r} not found")
    return _full(database, rows[0])


def list_projects(database: Database, *, include_archived: bool = False) -> list[dict]:
    where = "" if include_archived else "WHERE archived = 0"
    return [_full(database, r) for r in database.db.query(f"SELECT * FROM projects {where} ORDER BY id")]
