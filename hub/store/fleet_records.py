"""SQL for prediction records streamed by devices (de-duplicated by record id: delivery is
at-least-once)."""

from __future__ import annotations

from hub.db import Database

_INSERT = ("INSERT OR IGNORE INTO edge_predictions (id, device_id, deployment, revision, ts, boxes, latency_ms, "
           "record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def insert_records(db, rows: list[tuple]) -> int:
    """``(id, device_id, deployment, revision, ts, boxes, latency_ms, record_json)`` rows; a record
    id seen before is ignored. Each device's count in ``edge_prediction_counts`` grows by the rows
    that were new, in the same transaction. Returns how many were new. Call inside ``write()``."""
    by_device: dict[str, list[tuple]] = {}
    for row in rows:
        by_device.setdefault(row[1], []).append(row)
    conn, added = db.conn, []
    for device_id, group in by_device.items():
        before = conn.total_changes
        conn.executemany(_INSERT, group)
        if new := conn.total_changes - before:
            added.append((device_id, new))
    conn.executemany("INSERT INTO edge_prediction_counts (device_id, n) VALUES (?, ?) "
                     "ON CONFLICT (device_id) DO UPDATE SET n = n + excluded.n", added)
    return sum(n for _, n in added)


def count_records(database: Database, device_id: str | None = None) -> int:
    """Records stored (from every device, or one), read from the per-device counts."""
    if device_id is None:
        return database.db.execute("SELECT coalesce(sum(n), 0) FROM edge_prediction_counts").fetchone()[0]
    row = database.db.execute("SELECT n FROM edge_prediction_counts WHERE device_id = ?", [device_id]).fetchone()
    return row[0] if row else 0


def count_by_device(database: Database) -> dict[str, int]:
    """``{device_id: records stored}`` counted in ``edge_predictions`` itself (slow on millions: checks)."""
    return {r[0]: r[1] for r in database.db.execute(
        "SELECT device_id, count(*) FROM edge_predictions GROUP BY device_id").fetchall()}


def recent_records(database: Database, device_id: str, limit: int = 50) -> list[dict]:
    return list(database.db.query(
        "SELECT id, deployment, revision, ts, boxes, latency_ms FROM edge_predictions WHERE device_id = ? "
        "ORDER BY ts DESC LIMIT ?", [device_id, limit]))
