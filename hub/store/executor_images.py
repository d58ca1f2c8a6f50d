"""SQL for registered executor images (admin-managed; the built-in one is registered at init)."""

from __future__ import annotations

import json
import time

from detkit.errors import Conflict, NotFound
from hub.db import Database


def _image(row: dict) -> dict:
    row = dict(row)
    row["local_command"] = json.loads(row["local_command"] or "[]")
    row["manifest"] = json.loads(row["manifest"] or "{}")
    row["templates"] = json.loads(row["templates"] or "{}")
    row["is_public"], row["builtin"] = bool(row["is_public"]), bool(row["builtin"])
    return row


def upsert_image(
    database: Database, *, name: str, docker_ref: str = "", local_command: list[str] | None = None,
    description: str = "", manifest: dict | None = None, templates: dict | None = None, builtin: bool = False,
    is_public: bool = False,
) -> dict:
    values = dict(docker_ref=docker_ref, local_command=json.dumps(local_command or []), description=description,
                  manifest=json.dumps(manifest or {}), templates=json.dumps(templates or {}),
                  builtin=int(builtin), is_public=int(is_public))
    with database.write() as db:
        row = db.execute("SELECT id FROM executor_images WHERE name = ?", [name]).fetchone()
        if row:
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE executor_images SET {sets} WHERE id = ?", [*values.values(), row[0]])
        else:
            db["executor_images"].insert(dict(name=name, created_at=time.time(), **values))
    return get_image(database, name)


def get_image(database: Database, name_or_id: str | int) -> dict:
    col = "id" if isinstance(name_or_id, int) or str(name_or_id).isdigit() else "name"
    rows = list(database.db.query(f"SELECT * FROM executor_images WHERE {col} = ?", [name_or_id]))
    if not rows:
        raise NotFound(f"executor image {name_or_id!r} is not registered")
    return _image(rows[0])


def list_images(database: Database) -> list[dict]:
    return [_image(r) for r in database.db.query("SELECT * FROM executor_images ORDER BY builtin DESC, name")]


def link_mining_image(database: Database, training: str, mining: str) -> dict:
    t, m = get_image(database, training), get_image(database, mining)
    with database.write() as db:
        db.execute("UPDATE executor_images SET mining_image_id = ? WHERE id = ?", [m["id"], t["id"]])
    return get_image(database, t["id"])


def delete_image(database: Database, name: str) -> None:
    img = get_image(database, name)
    if img["builtin"]:
        raise Conflict("the built-in executor image cannot be removed")
    with database.write() as db:
        db.execute("DELETE FROM executor_images WHERE id = ?", [img["id"]])


def set_public(database: Database, name: str, public: bool) -> dict:
    img = get_image(database, name)
    with database.write() as db:
        db.execute("UPDATE executor_images SET is_public = ? WHERE id = ?", [int(public), img["id"]])
    return get_image(database, img["id"])


def copy_image(database: Database, name: str, new_name: str) -> dict:
    """Copy a public image (reference, command, manifest, templates) under a new name."""
    src = get_image(database, name)
    if not src["is_public"]:
        raise Conflict(f"image {name!r} is not public: only public images can be copied")
    new_name = (new_name or "").strip()
    if not new_name:
        raise Conflict("the copy needs a name")
    with database.write() as db:
        if db.execute("SELECT 1 FROM executor_images WHERE name = ?", [new_name]).fetchone():
            raise Conflict(f"an image named {new_name!r} already exists")
    return upsert_image(database, name=new_name, docker_ref=src["docker_ref"], local_command=src["local_command"],
                        description=src["description"] or f"copy of {name}", manifest=src["manifest"],
                        templates=src["templates"])
