"""SQL for the iteration workflow: a project's setup, its rounds and their steps."""

from __future__ import annotations

import json
import time

from detkit.errors import Conflict, NotFound
from hub.db import Database

STEP_STATES = ("pending", "running", "done", "skipped", "failed")


def _setup(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row.get("params") or "{}")
    return row


def get_setup(database: Database, project_id: int) -> dict | None:
    rows = list(database.db.query("SELECT * FROM iteration_setups WHERE project_id = ?", [project_id]))
    return _setup(rows[0]) if rows else None


def save_setup(database: Database, project_id: int, **fields) -> dict:
    """Insert or replace the project's setup (``params`` is a dict)."""
    row = {"project_id": project_id, **fields}
    row["params"] = json.dumps(row.get("params") or {})
    row.setdefault("created_at", time.time())
    cols = list(row)
    with database.write() as db:
        db.execute(
            f"INSERT OR REPLACE INTO iteration_setups ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [row[c] for c in cols],
        )
    return get_setup(database, project_id)


def update_setup(database: Database, project_id: int, **fields) -> dict:
    if "params" in fields:
        fields["params"] = json.dumps(fields["params"])
    sets = ", ".join(f"{k} = ?" for k in fields)
    with database.write() as db:
        db.execute(f"UPDATE iteration_setups SET {sets} WHERE project_id = ?", [*fields.values(), project_id])
    return get_setup(database, project_id)


def _iteration(row: dict) -> dict:
    row = dict(row)
    row["result"] = json.loads(row.get("result") or "{}")
    return row


def _step(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row.get("params") or "{}")
    row["output"] = json.loads(row.get("output") or "{}")
    return row


def create_iteration(database: Database, project_id: int, *, round_no: int, training_version_id: int,
                     mining_version_id: int, model_id: int | None, model_stage: str | None,
                     steps: list[str]) -> dict:
    """A new active round with its steps pending; Conflict while another round of the project is active."""
    now = time.time()
    with database.write() as db:
        active = db.execute("SELECT round FROM iterations WHERE project_id = ? AND state = 'active'",
                            [project_id]).fetchone()
        if active:
            raise Conflict(f"round {active[0]} of project {project_id} is still active: finish it first")
        iid = db.execute(
            "INSERT INTO iterations (project_id, round, state, training_version_id, mining_version_id, model_id, "
            "model_stage, created_at) VALUES (?, ?, 'active', ?, ?, ?, ?, ?)",
            [project_id, round_no, training_version_id, mining_version_id, model_id, model_stage, now],
        ).lastrowid
        for pos, step in enumerate(steps):
            db.execute("INSERT INTO iteration_steps (iteration_id, step, position, state, updated_at) "
                       "VALUES (?, ?, ?, 'pending', ?)", [iid, step, pos, now])
    return get_iteration(database, iid)


def get_iteration(database: Database, iteration_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM iterations WHERE id = ?", [iteration_id]))
    if not rows:
        raise NotFound(f"iteration {iteration_id} not found")
    it = _iteration(rows[0])
    it["steps"] = [_step(r) for r in database.db.query(
        "SELECT * FROM iteration_steps WHERE iteration_id = ? ORDER BY position", [iteration_id])]
    return it


def list_iterations(database: Database, project_id: int) -> list[dict]:
    ids = [r["id"] for r in database.db.query(
        "SELECT id FROM iterations WHERE project_id = ? ORDER BY round", [project_id])]
    return [get_iteration(database, i) for i in ids]


def active_iteration(database: Database, project_id: int) -> dict | None:
    rows = list(database.db.query(
        "SELECT id FROM iterations WHERE project_id = ? AND state = 'active'", [project_id]))
    return get_iteration(database, rows[0]["id"]) if rows else None


def active_iteration_ids(database: Database) -> list[int]:
    return [r["id"] for r in database.db.query("SELECT id FROM iterations WHERE state = 'active' ORDER BY id")]


def last_round(database: Database, project_id: int) -> int | None:
    row = database.db.execute("SELECT max(round) FROM iterations WHERE project_id = ?", [project_id]).fetchone()
    return row[0]


def update_step(database: Database, iteration_id: int, step: str, *, expect: tuple[str, ...] | None = None,
                **fields) -> bool:
    """Update a step's columns (dicts JSON-encoded); with ``expect`` only from those states. True if it changed."""
    for key in ("params", "output"):
        if key in fields:
            fields[key] = json.dumps(fields[key])
    fields["updated_at"] = time.time()
    sets = ", ".join(f"{k} = ?" for k in fields)
    sql = f"UPDATE iteration_steps SET {sets} WHERE iteration_id = ? AND step = ?"
    args = [*fields.values(), iteration_id, step]
    if expect:
        sql += f" AND state IN ({', '.join('?' * len(expect))})"
        args += list(expect)
    with database.write() as db:
        return db.execute(sql, args).rowcount == 1


def finish_iteration(database: Database, iteration_id: int, result: dict) -> None:
    with database.write() as db:
        db.execute("UPDATE iterations SET state = 'done', result = ?, finished_at = ? WHERE id = ?",
                   [json.dumps(result), time.time(), iteration_id])


def set_result(database: Database, iteration_id: int, result: dict) -> None:
    with database.write() as db:
        db.execute("UPDATE iterations SET result = ? WHERE id = ?", [json.dumps(result), iteration_id])
