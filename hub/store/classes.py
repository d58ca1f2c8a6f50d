"""The global class list with aliases.

Names and aliases are lower-cased and trimmed, and unique across both (one ``class_names``
table holds every name a class answers to). An alias resolves to its class's main name.
"""

from __future__ import annotations

import json
import re
import time

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database

_NAME = re.compile(r"^[^\s,/\\][^,/\\]{0,62}[^\s,/\\]$|^[^\s,/\\]$")


def normalize(name: str) -> str:
    """Lower-case and trim a class name; refuse empty names and ones with ``,`` ``/`` ``\\``."""
    if not isinstance(name, str):
        raise BadInput(f"class name {name!r} is not text")
    norm = " ".join(name.strip().lower().split())
    if not norm or not _NAME.match(norm):
        raise BadInput(f"class name {name!r}: 1-64 characters, no ',', '/' or '\\\\'")
    return norm


def _taken(db, name: str) -> dict | None:
    rows = list(
        db.query(
            "SELECT n.name, n.is_main, c.name AS main FROM class_names n JOIN classes c ON c.id = n.class_id "
            "WHERE n.name = ?",
            [name],
        )
    )
    return rows[0] if rows else None


def _refuse_taken(db, name: str) -> None:
    hit = _taken(db, name)
    if hit:
        what = "a class" if hit["is_main"] else f"an alias of {hit['main']!r}"
        raise Conflict(f"{name!r} is already {what}")


def add_class(database: Database, name: str, aliases: list[str] | tuple[str, ...] = ()) -> dict:
    """Add a class with optional aliases; every name must be new."""
    name = normalize(name)
    norm_aliases = [normalize(a) for a in aliases]
    if len({name, *norm_aliases}) != 1 + len(norm_aliases):
        raise BadInput(f"class {name!r}: repeated names among the class and its aliases")
    with database.write() as db:
        for n in (name, *norm_aliases):
            _refuse_taken(db, n)
        cur = db.execute("INSERT INTO classes (name, created_at) VALUES (?, ?)", [name, time.time()])
        class_id = cur.lastrowid
        db.execute("INSERT INTO class_names (name, class_id, is_main) VALUES (?, ?, 1)", [name, class_id])
        for a in norm_aliases:
            db.execute("INSERT INTO class_names (name, class_id, is_main) VALUES (?, ?, 0)", [a, class_id])
    return get_class(database, name)


def ensure_classes(database: Database, names: list[str]) -> dict[str, int]:
    """Add the classes that do not exist yet (import with ``unknown=add``); returns name -> id."""
    out: dict[str, int] = {}
    with database.write() as db:
        for raw in names:
            name = normalize(raw)
            hit = db.execute("SELECT class_id FROM class_names WHERE name = ?", [name]).fetchone()
            if hit:
                out[name] = hit[0]
                continue
            class_id = db.execute(
                "INSERT INTO classes (name, created_at) VALUES (?, ?)", [name, time.time()]
            ).lastrowid
            db.execute("INSERT INTO class_names (name, class_id, is_main) VALUES (?, ?, 1)", [name, class_id])
            out[name] = class_id
    return out


def add_alias(database: Database, name: str, alias: str) -> dict:
    """Give the class ``name`` (main name or alias) another alias."""
    alias = normalize(alias)
    with database.write() as db:
        class_id = _class_id(db, name)
        _refuse_taken(db, alias)
        db.execute("INSERT INTO class_names (name, class_id, is_main) VALUES (?, ?, 0)", [alias, class_id])
        main = db.execute("SELECT name FROM classes WHERE id = ?", [class_id]).fetchone()[0]
    return get_class(database, main)


def remove_alias(database: Database, alias: str) -> None:
    alias = normalize(alias)
    with database.write() as db:
        cur = db.execute("DELETE FROM class_names WHERE name = ? AND is_main = 0", [alias])
        if cur.rowcount == 0:
            raise NotFound(f"alias {alias!r} not found")


def rename_class(database: Database, name: str, new_name: str) -> dict:
    """Change a class's main name; annotations follow (they refer to the class id)."""
    new_name = normalize(new_name)
    with database.write() as db:
        class_id = _class_id(db, name)
        hit = db.execute("SELECT class_id, is_main FROM class_names WHERE name = ?", [new_name]).fetchone()
        if hit and hit[0] != class_id:
            _refuse_taken(db, new_name)
        if hit and hit[1]:
            return get_class(database, new_name)  # already its name
        if hit:  # one of its own aliases becomes the main name
            db.execute("DELETE FROM class_names WHERE name = ?", [new_name])
        db.execute("DELETE FROM class_names WHERE class_id = ? AND is_main = 1", [class_id])
        db.execute("INSERT INTO class_names (name, class_id, is_main) VALUES (?, ?, 1)", [new_name, class_id])
        db.execute("UPDATE classes SET name = ? WHERE id = ?", [new_name, class_id])
    return get_class(database, new_name)


def _class_id(db, name: str) -> int:
    norm = normalize(name)
    row = db.execute("SELECT class_id FROM class_names WHERE name = ?", [norm]).fetchone()
    if row is None:
        raise NotFound(f"class {norm!r} not found")
    return row[0]


def class_id(database: Database, name: str) -> int:
    """The id of the class called ``name`` (main name or alias)."""
    return _class_id(database.db, name)


def get_class(database: Database, name: str) -> dict:
    """``{"id", "name", "aliases", "created_at"}`` for a main name or an alias."""
    cid = _class_id(database.db, name)
    return _with_aliases(database, [cid])[0]


def _with_aliases(database: Database, ids: list[int] | None) -> list[dict]:
    where = ""
    params: list = []
    if ids is not None:
        where = f"WHERE c.id IN ({','.join('?' * len(ids))})"
        params = list(ids)
    rows = database.db.query(
        "SELECT c.id, c.name, c.created_at, "
        "(SELECT json_group_array(name) FROM (SELECT name FROM class_names n WHERE n.class_id = c.id "
        f"AND n.is_main = 0 ORDER BY name)) AS aliases FROM classes c {where} ORDER BY c.name",
        params,
    )
    return [{**r, "aliases": json.loads(r["aliases"])} for r in rows]


def list_classes(database: Database) -> list[dict]:
    """Every class with its aliases, by name."""
    return _with_aliases(database, None)


def name_map(database: Database) -> dict[str, str]:
    """Every known name (main or alias) -> main name: what import and training resolve through."""
    return {
        r[0]: r[1]
        for r in database.db.execute(
            "SELECT n.name, c.name FROM class_names n JOIN classes c ON c.id = n.class_id"
        ).fetchall()
    }


def ids_by_main_name(database: Database) -> dict[str, int]:
    return {r[0]: r[1] for r in database.db.execute("SELECT name, id FROM classes").fetchall()}


def names_by_id(database: Database) -> dict[int, str]:
    return {r[0]: r[1] for r in database.db.execute("SELECT id, name FROM classes").fetchall()}
