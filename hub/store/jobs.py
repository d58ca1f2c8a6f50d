"""SQL for jobs and their monitor history."""

from __future__ import annotations

import json
import time
import uuid

from detkit.errors import Conflict, NotFound
from hub.db import Database

ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled")
_JSON_FIELDS = ("params", "result")


def _row(row: dict) -> dict:
    row = dict(row)
    for f in _JSON_FIELDS:
        row[f] = json.loads(row.get(f) or "{}")
    return row


def create_job(
    database: Database,
    *,
    kind: str,
    category: str,
    params: dict,
    project_id: int | None = None,
    image: str | None = None,
    gpu_count: int = 0,
    timeout_s: float | None = None,
    created_by: int | None = None,
    message: str = "queued",
) -> dict:
    job_id = uuid.uuid4().hex[:12]
    row = dict(
        id=job_id, kind=kind, category=category, project_id=project_id, state="queued", progress=0.0,
        message=message, image=image, gpu_count=gpu_count, timeout_s=timeout_s, params=json.dumps(params),
        result="{}", created_by=created_by, created_at=time.time(),
    )
    with database.write() as db:
        db["jobs"].insert(row)
    return get_job(database, job_id)


def get_job(database: Database, job_id: str) -> dict:
    rows = list(database.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    if not rows:
        raise NotFound(f"job {job_id!r} not found")
    return _row(rows[0])


def list_jobs(
    database: Database, *, project_id: int | None = None, states: tuple[str, ...] | None = None,
    kind: str | None = None, limit: int = 200,
) -> list[dict]:
    where, args = [], []
    if project_id is not None:
        where.append("project_id = ?")
        args.append(project_id)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        args.extend(states)
    if kind:
        where.append("kind = ?")
        args.append(kind)
    sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY created_at DESC LIMIT ?"
    return [_row(r) for r in database.db.query(sql, [*args, limit])]


def claim_job(database: Database, job_id: str, owner: str, backend: str | None) -> bool:
    """Atomically move a queued job to running for ``owner``; False if someone else took it."""
    with database.write() as db:
        cur = db.execute(
            "UPDATE jobs SET state='running', owner=?, backend=?, started_at=?, message='starting' "
            "WHERE id=? AND state='queued'",
            [owner, backend, time.time(), job_id],
        )
        return cur.rowcount == 1


def set_handle(database: Database, job_id: str, handle: str) -> None:
    with database.write() as db:
        db.execute("UPDATE jobs SET handle=? WHERE id=?", [handle, job_id])


def set_owner(database: Database, job_id: str, owner: str) -> None:
    with database.write() as db:
        db.execute("UPDATE jobs SET owner=? WHERE id=?", [owner, job_id])


def update_progress(database: Database, job_id: str, progress: float, message: str | None = None) -> None:
    with database.write() as db:
        if message is None:
            db.execute("UPDATE jobs SET progress=? WHERE id=? AND state='running'", [progress, job_id])
        else:
            db.execute("UPDATE jobs SET progress=?, message=? WHERE id=? AND state='running'",
                       [progress, message, job_id])


def add_monitor_point(database: Database, job_id: str, ts: float, percent: float, state: int) -> None:
    with database.write() as db:
        db.execute("INSERT INTO monitor_history (job_id, ts, percent, state) VALUES (?, ?, ?, ?)",
                   [job_id, ts, percent, state])


def monitor_history(database: Database, job_id: str) -> list[dict]:
    return list(database.db.query(
        "SELECT ts, percent, state FROM monitor_history WHERE job_id=? ORDER BY ts", [job_id]))


def finish_job(
    database: Database, job_id: str, state: str, *, message: str = "", result: dict | None = None,
    error_code: str | None = None, error: str | None = None, log_tail: str | None = None,
) -> None:
    if state not in FINAL:
        raise ValueError(state)
    with database.write() as db:
        db.execute(
            "UPDATE jobs SET state=?, message=?, result=?, error_code=?, error=?, log_tail=?, finished_at=?, "
            "progress=CASE WHEN ?='done' THEN 1.0 ELSE progress END WHERE id=? AND state IN ('queued','running')",
            [state, message, json.dumps(result or {}), error_code, error, log_tail, time.time(), state, job_id],
        )


def request_cancel(database: Database, job_id: str) -> dict:
    job = get_job(database, job_id)
    if job["state"] in FINAL:
        raise Conflict(f"job {job_id} already {job['state']}")
    with database.write() as db:
        if job["state"] == "queued":
            db.execute("UPDATE jobs SET state='cancelled', message='cancelled before start', finished_at=? "
                       "WHERE id=? AND state='queued'", [time.time(), job_id])
        db.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", [job_id])
    return get_job(database, job_id)
