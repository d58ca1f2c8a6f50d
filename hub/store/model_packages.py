"""SQL for model packages (the converted, validated forms of a model stage)."""

from __future__ import annotations

import json
import time

from detkit.errors import NotFound
from hub.db import Database


def _row(row: dict) -> dict:
    row = dict(row)
    row["accuracy"] = json.loads(row["accuracy"] or "{}")
    row["speed"] = json.loads(row["speed"] or "{}")
    return row


def add_package(database: Database, *, model_id: int, stage: str, target: str, backend: str, precision: str,
                sha256: str, size_bytes: int, status: str, reason: str, accuracy: dict, speed: dict,
                job_id: str | None) -> dict:
    with database.write() as db:
        pid = db.execute(
            "INSERT INTO model_packages (model_id, stage, target, backend, precision, sha256, size_bytes, status, "
            "reason, accuracy, speed, job_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [model_id, stage, target, backend, precision, sha256, size_bytes, status, reason, json.dumps(accuracy),
             json.dumps(speed), job_id, time.time()],
        ).lastrowid
    return get_package(database, pid)


def get_package(database: Database, package_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM model_packages WHERE id = ?", [package_id]))
    if not rows:
        raise NotFound(f"model package {package_id} not found")
    return _row(rows[0])


def list_packages(database: Database, model_id: int) -> list[dict]:
    return [_row(r) for r in database.db.query(
        "SELECT * FROM model_packages WHERE model_id = ? ORDER BY created_at DESC, id DESC", [model_id])]
