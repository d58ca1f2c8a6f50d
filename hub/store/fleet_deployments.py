"""SQL for deployments and their per-device rollout rows.

A deployment targets one device, a tag or all devices; its devices are split into batches when it
is created. Row states: ``pending`` (not sent yet) -> ``sent`` -> ``downloading`` / ``verifying``
/ ``loading`` -> ``healthy`` | ``failed`` | ``timed_out``; later ``rolled_back``, ``cancelled``
(never sent before an abort) or ``superseded`` (a newer deployment of the same name took over).
"""

from __future__ import annotations

import json
import math
import time

from detkit.errors import NotFound
from hub.db import Database

ACTIVE = ("sent", "downloading", "verifying", "loading")
SUCCESS = ("healthy", "disabled")
FAILURE = ("failed", "timed_out")
FINAL = ("rolled_back", "cancelled", "superseded")


def _deployment(row: dict) -> dict:
    row = dict(row)
    row["settings"] = json.loads(row["settings"] or "{}")
    row["target"] = row["target_kind"] if row["target_kind"] == "all" else f"{row['target_kind']}:{row['target_value']}"
    return row


def batches_for(n: int, batch_percent: float) -> list[int]:
    """Batch number of each of ``n`` devices: batches of ``round(n * percent / 100)`` devices (at least 1)."""
    size = max(1, math.floor(n * batch_percent / 100.0 + 0.5))
    return [i // size for i in range(n)]


def create_deployment(database: Database, *, algorithm_id: int, name: str, backend: str, settings: dict,
                      target_kind: str, target_value: str, batch_percent: float, success_threshold: float,
                      max_failures: int, device_ids: list[str], created_by: int | None) -> int:
    """Insert a deployment and its device rows (batches in device order); returns its id."""
    batches = batches_for(len(device_ids), batch_percent)
    now = time.time()
    with database.write() as db:
        dep_id = db.execute(
            "INSERT INTO deployments (algorithm_id, name, backend, settings, target_kind, target_value, batch_percent, "
            "success_threshold, max_failures, batches, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [algorithm_id, name, backend, json.dumps(settings, sort_keys=True), target_kind, target_value,
             batch_percent, success_threshold, max_failures, (max(batches) + 1) if batches else 0, created_by, now],
        ).lastrowid
        db.conn.executemany(
            "INSERT INTO deployment_devices (deployment_id, device_id, batch, updated_at) VALUES (?, ?, ?, ?)",
            [(dep_id, d, b, now) for d, b in zip(device_ids, batches, strict=True)])
    return dep_id


def find_same_running(database: Database, *, algorithm_id: int, name: str, backend: str, settings: dict,
                      target_kind: str, target_value: str) -> int | None:
    """A running deployment with exactly these parameters (so a repeated request changes nothing)."""
    row = database.db.execute(
        "SELECT id FROM deployments WHERE state = 'running' AND algorithm_id = ? AND name = ? AND backend = ? "
        "AND settings = ? AND target_kind = ? AND target_value = ? ORDER BY id DESC LIMIT 1",
        [algorithm_id, name, backend, json.dumps(settings, sort_keys=True), target_kind, target_value]).fetchone()
    return row[0] if row else None


def get_deployment(database: Database, deployment_id: int) -> dict:
    rows = list(database.db.query(
        "SELECT d.*, a.name AS algorithm_name, a.version AS algorithm_version FROM deployments d "
        "JOIN algorithms a ON a.id = d.algorithm_id WHERE d.id = ?", [deployment_id]))
    if not rows:
        raise NotFound(f"deployment {deployment_id} not found")
    dep = _deployment(rows[0])
    dep["counts"] = state_counts(database, deployment_id)
    return dep


def state_counts(database: Database, deployment_id: int) -> dict[str, int]:
    return dict(database.db.execute(
        "SELECT state, count(*) FROM deployment_devices WHERE deployment_id = ? GROUP BY state",
        [deployment_id]).fetchall())


def list_deployments(database: Database, *, states: tuple[str, ...] = (), limit: int = 200) -> list[dict]:
    clause = f"WHERE d.state IN ({','.join('?' * len(states))})" if states else ""
    out = [_deployment(r) for r in database.db.query(
        "SELECT d.*, a.name AS algorithm_name, a.version AS algorithm_version FROM deployments d "
        f"JOIN algorithms a ON a.id = d.algorithm_id {clause} ORDER BY d.id DESC LIMIT ?", [*states, limit])]
    for d in out:
        d["counts"] = state_counts(database, d["id"])
    return out


def rows(database: Database, deployment_id: int) -> list[dict]:
    out = []
    for r in database.db.query(
            "SELECT r.*, v.name AS device_name, v.online FROM deployment_devices r JOIN devices v ON v.id = r.device_id "
            "WHERE r.deployment_id = ? ORDER BY r.batch, r.device_id", [deployment_id]):
        r["previous"] = json.loads(r["previous"]) if r["previous"] else None
        r["online"] = bool(r["online"])
        out.append(r)
    return out


def device_history(database: Database, device_id: str, limit: int = 50) -> list[dict]:
    return list(database.db.query(
        "SELECT r.*, d.name, d.state AS deployment_state, d.created_at, a.name AS algorithm_name, "
        "a.version AS algorithm_version FROM deployment_devices r JOIN deployments d ON d.id = r.deployment_id "
        "JOIN algorithms a ON a.id = d.algorithm_id WHERE r.device_id = ? ORDER BY d.id DESC LIMIT ?",
        [device_id, limit]))


def set_deployment(db, deployment_id: int, **fields) -> None:
    """Update deployment columns. Call inside ``write()``."""
    cols = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"UPDATE deployments SET {cols} WHERE id = ?", [*fields.values(), deployment_id])


def set_row(db, deployment_id: int, device_id: str, **fields) -> None:
    """Update one device row (``previous`` as a dict is stored as JSON). Call inside ``write()``."""
    if "previous" in fields and fields["previous"] is not None:
        fields["previous"] = json.dumps(fields["previous"])
    fields["updated_at"] = time.time()
    cols = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"UPDATE deployment_devices SET {cols} WHERE deployment_id = ? AND device_id = ?",
               [*fields.values(), deployment_id, device_id])


def write_reported_states(db, items: list[tuple]) -> int:
    """Move rows by the device's reports: ``(state, reason, device_id, name, revision)``; only rows
    still in flight (or failed, which a later healthy report can mend) move. Call inside ``write()``."""
    flight = "','".join((*ACTIVE, *SUCCESS, *FAILURE))
    now = time.time()
    cur = db.conn.executemany(
        "UPDATE deployment_devices SET state = ?, reason = ?, updated_at = ? "
        f"WHERE state IN ('{flight}') AND device_id = ? AND revision = ? AND deployment_id IN "
        "(SELECT id FROM deployments WHERE name = ?)",
        [(s, r, now, d, rev, n) for s, r, d, n, rev in items])
    return cur.rowcount


def timed_out(database: Database, older_than: float) -> list[tuple[int, str]]:
    """Rows stuck downloading/verifying/loading since before ``older_than`` on online devices."""
    return [tuple(r) for r in database.db.execute(
        "SELECT r.deployment_id, r.device_id FROM deployment_devices r JOIN devices v ON v.id = r.device_id "
        "WHERE r.state IN ('downloading', 'verifying', 'loading') AND r.updated_at < ? AND v.online = 1",
        [older_than]).fetchall()]


def in_flight_for(db, device_id: str, name: str, except_id: int) -> list[int]:
    """Other deployments of ``name`` still moving this device (a new one supersedes them)."""
    flight = "','".join(("pending", *ACTIVE))
    return [r[0] for r in db.execute(
        f"SELECT r.deployment_id FROM deployment_devices r JOIN deployments d ON d.id = r.deployment_id "
        f"WHERE r.device_id = ? AND d.name = ? AND r.deployment_id != ? AND r.state IN ('{flight}')",
        [device_id, name, except_id]).fetchall()]
