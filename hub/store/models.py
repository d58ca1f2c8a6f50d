"""SQL for models and their stages. A model's files live under ``models/<model id>/``."""

from __future__ import annotations

import json
import time

from detkit.errors import NotFound
from hub.db import Database


def _model(row: dict) -> dict:
    row = dict(row)
    for f, default in (("class_names", "[]"), ("config", "{}"), ("history", "[]")):
        row[f] = json.loads(row.get(f) or default)
    return row


def create_model(
    database: Database, *, project_id: int | None, name: str, image: str, source: str, class_names: list[str],
    stages: list[dict], best_stage: str, folder: str, job_id: str | None = None, train_version_id: int | None = None,
    val_version_id: int | None = None, config: dict | None = None, history: list | None = None,
) -> dict:
    """Insert a model and its stages (``[{"name", "files", "metrics", "timestamp"}]``) in one transaction."""
    with database.write() as db:
        version = db.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM models WHERE project_id IS ? AND name = ?", [project_id, name]
        ).fetchone()[0]
        model_id = db.execute(
            "INSERT INTO models (project_id, name, version, image, folder, source, job_id, train_version_id, val_version_id, "
            "class_names, config, best_stage, history, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [project_id, name, version, image, folder, source, job_id, train_version_id, val_version_id,
             json.dumps(class_names), json.dumps(config or {}), best_stage, json.dumps(history or []), time.time()],
        ).lastrowid
        for st in stages:
            db.execute(
                "INSERT INTO model_stages (model_id, name, files, metrics, timestamp) VALUES (?,?,?,?,?)",
                [model_id, st["name"], json.dumps(st["files"]), json.dumps(st.get("metrics", {})),
                 st.get("timestamp", 0.0)],
            )
    return get_model(database, model_id)


def get_model(database: Database, model_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM models WHERE id = ?", [model_id]))
    if not rows:
        raise NotFound(f"model {model_id} not found")
    model = _model(rows[0])
    model["stages"] = [
        {"name": r["name"], "files": json.loads(r["files"]), "metrics": json.loads(r["metrics"]),
         "timestamp": r["timestamp"]}
        for r in database.db.query("SELECT * FROM model_stages WHERE model_id = ? ORDER BY timestamp, name",
                                   [model_id])
    ]
    return model


def list_models(database: Database, project_id: int | None = None) -> list[dict]:
    sql, args = "SELECT id FROM models", []
    if project_id is not None:
        sql += " WHERE project_id = ?"
        args.append(project_id)
    return [get_model(database, r["id"]) for r in database.db.query(sql + " ORDER BY id DESC", args)]


def model_for_job(database: Database, job_id: str) -> dict | None:
    rows = list(database.db.query("SELECT id FROM models WHERE job_id = ?", [job_id]))
    return get_model(database, rows[0]["id"]) if rows else None
