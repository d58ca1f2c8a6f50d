"""SQL for prediction records streamed by devices (de-duplicated by record id: delivery is
at-least-once)."""

from __future__ import annotations

from hub.db import Database


def insert_records(db, rows: list[tuple]) -> int:
    """``(id, device_id, deployment, revision, ts, boxes, latency_ms, record_json)`` rows; a record
    id seen before is ignored. Returns how many were new. Call inside ``write()``."""
    before = db.conn.total_changes
    db.conn.executemany(
        "INSERT OR IGNORE INTO edge_predictions (id, device_id, deployment, revision, ts, boxes, latency_ms, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return db.conn.total_changes - before


def count_records(database: Database, device_id: str | None = None) -> int:
    if device_id is None:
        return database.db.execute("SELECT count(*) FROM edge_predictions").fetchone()[0]
    return database.db.execute("SELECT count(*) FROM edge_predictions WHERE device_id = ?", [device_id]).fetchone()[0]


def recent_records(database: Database, device_id: str, limit: int = 50) -> list[dict]:
    return list(database.db.query(
        "SELECT id, deployment, revision, ts, boxes, latency_ms FROM edge_predictions WHERE device_id = ? "
        "ORDER BY ts DESC LIMIT ?", [device_id, limit]))
