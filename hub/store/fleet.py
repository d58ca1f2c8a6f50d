"""SQL for devices: provisioning (token hashes only), desired slots, reported states, presence,
metrics and commands. Deployments live in :mod:`hub.store.fleet_deployments`, algorithms and
artifacts in :mod:`hub.store.fleet_algorithms`, prediction records in :mod:`hub.store.fleet_records`."""

from __future__ import annotations

import hashlib
import json
import re
import time

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database

DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # the agent's (and the topics') rule
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
METRICS_KEPT = 2000  # metric rows kept per device (the chart's window)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_tags(tags: list[str]) -> list[str]:
    bad = [t for t in tags if not isinstance(t, str) or not TAG.match(t)]
    if bad:
        raise BadInput(f"device tags {bad}: 1-64 of letters, digits, '_', '.', ':', '-'")
    return sorted(set(tags))


def _device(row: dict) -> dict:
    row = dict(row)
    row.pop("token_hash", None)
    row.pop("mqtt_hash", None)
    row["tags"] = json.loads(row["tags"] or "[]")
    row["status"] = json.loads(row["status"] or "{}")
    row["metrics"] = json.loads(row["metrics"] or "{}")
    row["online"] = bool(row["online"])
    return row


def create_device(database: Database, device_id: str, name: str, tags: list[str], token: str,
                  project_id: int | None = None, mqtt_hash: str = "") -> dict:
    """Insert a device keeping only ``sha256(token)``; Conflict when the id is taken."""
    if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
        raise BadInput(f"device id {device_id!r}: 1-64 of letters, digits, '_', '.', '-' (starting alphanumeric)")
    tags = check_tags(tags)
    with database.write() as db:
        if db.execute("SELECT 1 FROM devices WHERE id = ?", [device_id]).fetchone():
            raise Conflict(f"device {device_id!r} already exists")
        db.execute(
            "INSERT INTO devices (id, name, tags, project_id, token_hash, mqtt_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [device_id, name or device_id, json.dumps(tags), project_id, token_hash(token), mqtt_hash, time.time()],
        )
    return get_device(database, device_id)


def set_token(database: Database, device_id: str, token: str, mqtt_hash: str = "") -> None:
    get_device(database, device_id)
    with database.write() as db:
        db.execute("UPDATE devices SET token_hash = ?, mqtt_hash = ? WHERE id = ?",
                   [token_hash(token), mqtt_hash, device_id])


def mqtt_credentials(database: Database) -> list[tuple[str, str]]:
    """``(device_id, mosquitto password hash)`` of every device that has one."""
    return [tuple(r) for r in database.db.execute(
        "SELECT id, mqtt_hash FROM devices WHERE mqtt_hash != '' ORDER BY id").fetchall()]


def update_device(database: Database, device_id: str, *, name: str | None = None,
                  tags: list[str] | None = None) -> dict:
    get_device(database, device_id)
    with database.write() as db:
        if name is not None:
            db.execute("UPDATE devices SET name = ? WHERE id = ?", [name, device_id])
        if tags is not None:
            db.execute("UPDATE devices SET tags = ? WHERE id = ?", [json.dumps(check_tags(tags)), device_id])
    return get_device(database, device_id)


def get_device(database: Database, device_id: str) -> dict:
    rows = list(database.db.query("SELECT * FROM devices WHERE id = ?", [device_id]))
    if not rows:
        raise NotFound(f"device {device_id!r} not found")
    return _device(rows[0])


def device_for_token(database: Database, token: str) -> dict | None:
    rows = list(database.db.query("SELECT * FROM devices WHERE token_hash = ?", [token_hash(token)]))
    return _device(rows[0]) if rows else None


def list_devices(database: Database, tag: str | None = None) -> list[dict]:
    """Every device (carrying ``tag``), by id."""
    sql_where, args = _device_filter(tag=tag or "")
    return [_device(r) for r in database.db.query(f"SELECT * FROM devices{sql_where} ORDER BY id", args)]


def find_devices(database: Database, q: str = "", tag: str = "", online: bool | None = None, limit: int = 50,
                 offset: int = 0) -> tuple[list[dict], int]:
    """One page of devices (by id) whose id or name contains ``q``, carrying ``tag``, online or not;
    returns ``(devices, how many match in all)``."""
    sql_where, args = _device_filter(q, tag, online)
    total = database.db.execute(f"SELECT count(*) FROM devices{sql_where}", args).fetchone()[0]
    rows = database.db.query(f"SELECT * FROM devices{sql_where} ORDER BY id LIMIT ? OFFSET ?", [*args, limit, offset])
    return [_device(r) for r in rows], total


def _device_filter(q: str = "", tag: str = "", online: bool | None = None) -> tuple[str, list]:
    """``(" WHERE ...", args)`` for devices whose id or name contains ``q``, carrying ``tag``, online or not."""
    where, args = [], []
    if q:
        where.append("(instr(lower(id), ?) > 0 OR instr(lower(name), ?) > 0)")
        args += [q.lower(), q.lower()]
    if tag:
        where.append("EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE value = ?)")
        args.append(tag)
    if online is not None:
        where.append("online = ?")
        args.append(1 if online else 0)
    return (f" WHERE {' AND '.join(where)}" if where else ""), args


def presence_counts(database: Database) -> dict[str, int]:
    """``{"devices", "online", "offline"}`` over the whole fleet."""
    total, online = database.db.execute("SELECT count(*), coalesce(sum(online), 0) FROM devices").fetchone()
    return {"devices": total, "online": online, "offline": total - online}


def all_tags(database: Database) -> list[str]:
    return [r[0] for r in database.db.execute(
        "SELECT DISTINCT j.value FROM devices, json_each(devices.tags) AS j ORDER BY 1").fetchall()]


def device_ids(database: Database, tag: str | None = None) -> list[str]:
    return [d["id"] for d in list_devices(database, tag)]


def delete_device(database: Database, device_id: str) -> None:
    get_device(database, device_id)
    with database.write() as db:
        db.execute("DELETE FROM devices WHERE id = ?", [device_id])


# --- desired slots --------------------------------------------------------------------------------


def slots(database: Database, device_id: str) -> list[dict]:
    """The device's desired entries: ``[{"name", "entry", "algorithm_id", "deployment_id"}]``."""
    return slots_for(database, [device_id])[device_id]


def next_revision(db, device_id: str) -> int:
    """Bump and return the device's desired revision. Call inside ``write()``.

    Revisions follow the clock (at least +1): an agent ignores desired states older than the last
    one it saw, so a device removed and provisioned again (or a new workspace) must still move on."""
    db.execute("UPDATE devices SET desired_revision = max(desired_revision + 1, CAST(strftime('%s', 'now') AS INTEGER)) "
               "WHERE id = ?", [device_id])
    return db.execute("SELECT desired_revision FROM devices WHERE id = ?", [device_id]).fetchone()[0]


def put_slot(db, device_id: str, name: str, entry: dict | None, algorithm_id: int | None = None,
             deployment_id: int | None = None) -> None:
    """Set (or with ``entry=None`` remove) one desired entry. Call inside ``write()``."""
    if entry is None:
        db.execute("DELETE FROM device_slots WHERE device_id = ? AND name = ?", [device_id, name])
        return
    db.execute(
        "INSERT INTO device_slots (device_id, name, entry, algorithm_id, deployment_id) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(device_id, name) DO UPDATE SET entry = excluded.entry, algorithm_id = excluded.algorithm_id, "
        "deployment_id = excluded.deployment_id",
        [device_id, name, json.dumps(entry), algorithm_id, deployment_id],
    )


def get_slot(db, device_id: str, name: str) -> dict | None:
    row = db.execute("SELECT entry, algorithm_id, deployment_id FROM device_slots WHERE device_id = ? AND name = ?",
                     [device_id, name]).fetchone()
    return None if row is None else {"entry": json.loads(row[0]), "algorithm_id": row[1], "deployment_id": row[2]}


def set_slot_enabled(database: Database, device_id: str, name: str, enabled: bool) -> None:
    with database.write() as db:
        slot = get_slot(db, device_id, name)
        if slot is None:
            raise NotFound(f"device {device_id!r} has no algorithm {name!r}")
        slot["entry"]["enabled"] = enabled
        put_slot(db, device_id, name, slot["entry"], slot["algorithm_id"], slot["deployment_id"])


def unpublished(database: Database) -> list[str]:
    """Devices whose desired revision was not published yet (the publisher's work list)."""
    return [r[0] for r in database.db.execute(
        "SELECT id FROM devices WHERE desired_revision != published_revision ORDER BY id").fetchall()]


def mark_published(database: Database, device_id: str, revision: int) -> None:
    with database.write() as db:
        db.execute("UPDATE devices SET published_revision = ? WHERE id = ? AND published_revision < ?",
                   [revision, device_id, revision])


def desired_document(database: Database, device_id: str) -> tuple[int, list[dict]]:
    """``(revision, entries)`` of the device's desired state as stored now."""
    rev = database.db.execute("SELECT desired_revision FROM devices WHERE id = ?", [device_id]).fetchone()
    if rev is None:
        raise NotFound(f"device {device_id!r} not found")
    return rev[0], [s["entry"] for s in slots(database, device_id)]


# --- reported state, presence, metrics ------------------------------------------------------------


def _in_chunks(database: Database, sql: str, ids: list[str]) -> list[dict]:
    """``sql`` with ``{ids}`` filled by placeholders, run over ``ids`` in chunks (SQLite's variable limit)."""
    out: list[dict] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out += database.db.query(sql.format(ids=", ".join("?" * len(chunk))), chunk)
    return out


def reported_for(database: Database, device_ids: list[str]) -> dict[str, list[dict]]:
    """What each device last reported per deployment name, one query per 500 devices:
    ``{device_id: [rows by name]}``."""
    out: dict[str, list[dict]] = {d: [] for d in device_ids}
    for r in _in_chunks(database, "SELECT * FROM device_reported WHERE device_id IN ({ids}) ORDER BY device_id, name",
                        device_ids):
        out[r["device_id"]].append(r)
    return out


def slots_for(database: Database, device_ids: list[str]) -> dict[str, list[dict]]:
    """:func:`slots` of many devices in one query per 500: ``{device_id: [slots by name]}``."""
    out: dict[str, list[dict]] = {d: [] for d in device_ids}
    for r in _in_chunks(database, "SELECT * FROM device_slots WHERE device_id IN ({ids}) ORDER BY device_id, name",
                        device_ids):
        out[r["device_id"]].append({**r, "entry": json.loads(r["entry"])})
    return out


def known_ids(db) -> set[str]:
    return {r[0] for r in db.execute("SELECT id FROM devices").fetchall()}


def write_presence(db, rows: list[tuple]) -> None:
    """``(online, last_seen, status_json_or_None, device_id)`` rows. Call inside ``write()``."""
    db.conn.executemany(
        "UPDATE devices SET online = ?, last_seen = max(coalesce(last_seen, 0), ?), "
        "status = coalesce(?, status) WHERE id = ?", rows)


def write_seen(db, rows: list[tuple]) -> None:
    """``(ts, device_id)``: any message updates "last seen" (presence itself follows ``status``, whose
    last will says offline: a late queued message must not bring a gone device back online)."""
    db.conn.executemany("UPDATE devices SET last_seen = max(coalesce(last_seen, 0), ?) WHERE id = ?", rows)


def write_reported(db, rows: list[tuple]) -> None:
    """``(device_id, name, revision, state, reason, sha256, seq, ts)``; an older report (lower sequence
    number and earlier time) never overwrites a newer one. Call inside ``write()``."""
    # WHERE EXISTS: a device removed a moment ago must not fail the whole batch on its foreign key
    db.conn.executemany(
        "INSERT INTO device_reported (device_id, name, revision, state, reason, sha256, seq, ts) "
        "SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?) "
        "ON CONFLICT(device_id, name) DO UPDATE SET revision = excluded.revision, "
        "state = excluded.state, reason = excluded.reason, sha256 = excluded.sha256, seq = excluded.seq, "
        "ts = excluded.ts WHERE excluded.seq > device_reported.seq OR excluded.ts >= device_reported.ts",
        [(*r, r[0]) for r in rows])


def write_metrics(db, rows: list[tuple], summaries: list[tuple]) -> None:
    """Metric rows ``(device_id, ts, inferences, errors, p50, p95, outbox, cpu, mem)`` and the latest
    summary per device ``(metrics_json, device_id)``."""
    db.conn.executemany(
        "INSERT INTO device_metrics (device_id, ts, inferences, errors, p50_ms, p95_ms, outbox_depth, cpu_percent, "
        "memory_mb) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?)",
        [(*r, r[0]) for r in rows])
    db.conn.executemany("UPDATE devices SET metrics = ? WHERE id = ?", summaries)


def prune_metrics(database: Database) -> None:
    with database.write() as db:
        db.execute(
            "DELETE FROM device_metrics WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY device_id ORDER BY ts DESC) AS n FROM device_metrics) WHERE n > ?)", [METRICS_KEPT])


def metrics_series(database: Database, device_id: str, limit: int = 300) -> list[dict]:
    rows = list(database.db.query(
        "SELECT ts, inferences, errors, p50_ms, p95_ms, outbox_depth, cpu_percent, memory_mb FROM device_metrics "
        "WHERE device_id = ? ORDER BY ts DESC LIMIT ?", [device_id, limit]))
    return rows[::-1]


# --- commands -------------------------------------------------------------------------------------


def add_command(database: Database, cid: str, device_id: str, action: str, deployment: str) -> None:
    with database.write() as db:
        db.execute("INSERT INTO device_commands (id, device_id, action, deployment, created_at) VALUES (?, ?, ?, ?, ?)",
                   [cid, device_id, action, deployment, time.time()])


def write_command_results(db, rows: list[tuple]) -> None:
    """``(ok, result_json, error, finished_at, id, device_id)``."""
    db.conn.executemany("UPDATE device_commands SET ok = ?, result = ?, error = ?, finished_at = ? "
                        "WHERE id = ? AND device_id = ?", rows)


def commands(database: Database, device_id: str, limit: int = 50) -> list[dict]:
    out = []
    for r in database.db.query("SELECT * FROM device_commands WHERE device_id = ? ORDER BY created_at DESC LIMIT ?",
                               [device_id, limit]):
        r["result"] = json.loads(r["result"]) if r["result"] else None
        r["ok"] = None if r["ok"] is None else bool(r["ok"])
        out.append(r)
    return out


def get_command(database: Database, cid: str) -> dict:
    rows = list(database.db.query("SELECT * FROM device_commands WHERE id = ?", [cid]))
    if not rows:
        raise NotFound(f"command {cid!r} not found")
    r = rows[0]
    r["result"] = json.loads(r["result"]) if r["result"] else None
    r["ok"] = None if r["ok"] is None else bool(r["ok"])
    return r
