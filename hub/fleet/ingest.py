"""Ingest of device uplinks: ``status``, ``reported``, ``metrics``, ``predictions``, ``cmd/result``.

The MQTT network thread only appends ``(device_id, kind, payload, received_at)`` to a queue; one
worker thread takes whatever is queued (up to :data:`MAX_BATCH` messages), parses each payload
through :mod:`agent.protocol` and writes the whole batch in ONE SQLite transaction with
``executemany`` (presence, reported states and rollout rows, metrics, prediction records,
command results). Garbage (not JSON, wrong schema, wrong types) and messages from devices that
were never provisioned are logged (rate-limited) and counted in :attr:`Ingest.counters`; they
never stop the worker.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from agent import protocol
from agent.protocol import ProtocolError
from hub.db import Database
from hub.store import fleet as fleet_store
from hub.store import fleet_deployments as dep_store
from hub.store import fleet_records as records_store

log = logging.getLogger(__name__)
MAX_BATCH = 5000
MAX_QUEUE = 200_000
_ID_MAX = 64


def _num(value, kind=float):
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return kind(value)


class _Batch:
    """The rows one batch of messages turns into."""

    def __init__(self) -> None:
        self.presence: list[tuple] = []
        self.seen: dict[str, float] = {}
        self.reported: list[tuple] = []
        self.rollout: list[tuple] = []
        self.metrics: list[tuple] = []
        self.summaries: dict[str, str] = {}
        self.records: list[tuple] = []
        self.results: list[tuple] = []


class Ingest:
    """The queue and the worker that drains it; ``on_reported`` is called after a batch that moved
    rollout rows (the rollout loop wakes up)."""

    def __init__(self, database: Database, on_reported: Callable[[], None] | None = None):
        self.database = database
        self.on_reported = on_reported
        self.counters = {"messages": 0, "garbage": 0, "unknown_device": 0, "records": 0, "duplicate_records": 0,
                         "batches": 0, "overflow": 0}
        self._q: deque[tuple] = deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warn = 0.0
        self._idle = threading.Event()
        self._idle.set()

    # ---- life cycle ---------------------------------------------------------------------------
    def start(self) -> Ingest:
        self._thread = threading.Thread(target=self._run, name="fleet-ingest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread:
            self._thread.join(30)

    def put(self, device_id: str, kind: str, payload: bytes) -> None:
        """Network thread: enqueue (never blocks; beyond :data:`MAX_QUEUE` the message is counted lost)."""
        with self._cv:
            if len(self._q) >= MAX_QUEUE:
                self.counters["overflow"] += 1
                return
            self._q.append((device_id, kind, payload, time.time()))
            self._idle.clear()
            self._cv.notify()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written (tests, benchmarks)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._stop.is_set():
                    self._idle.set()
                    self._cv.wait(0.5)
                if not self._q and self._stop.is_set():
                    self._idle.set()
                    return
                batch = [self._q.popleft() for _ in range(min(len(self._q), MAX_BATCH))]
            try:
                self.process(batch)
            except Exception:  # a failed batch is logged; the worker keeps going
                log.exception("ingest batch of %d messages failed", len(batch))

    # ---- parsing ------------------------------------------------------------------------------
    def _garbage(self, device_id: str, kind: str, why: str) -> None:
        self.counters["garbage"] += 1
        now = time.monotonic()
        if now - self._last_warn > 5.0:  # one line per 5 s: a broken device must not flood the log
            self._last_warn = now
            log.warning("dropped a bad %s message from %s: %s (%d bad so far)", kind, device_id, why,
                        self.counters["garbage"])

    def process(self, messages: list[tuple]) -> None:
        """Parse and write one batch ``[(device_id, kind, payload, received_at)]`` in one transaction."""
        b = _Batch()
        known = fleet_store.known_ids(self.database.db)  # per batch: exact, and ~1 ms for 1,000 devices
        for device_id, kind, raw, at in messages:
            self.counters["messages"] += 1
            if device_id not in known:
                self.counters["unknown_device"] += 1
                continue
            if kind == "status" and not raw:
                continue  # a cleared retained status (device removed)
            try:
                data = protocol.decode(raw, kind)
                _HANDLERS[kind](b, device_id, data, at)
            except ProtocolError as exc:
                self._garbage(device_id, kind, exc.message)
                continue
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self._garbage(device_id, kind, f"{type(exc).__name__}: {exc}")
                continue
            if kind != "status":
                b.seen[device_id] = max(b.seen.get(device_id, 0.0), at)
        self._write(b)

    def _write(self, b: _Batch) -> None:
        moved = 0
        with self.database.write() as db:
            if b.presence:
                fleet_store.write_presence(db, b.presence)
            if b.seen:
                fleet_store.write_seen(db, [(ts, d) for d, ts in b.seen.items()])
            if b.reported:
                fleet_store.write_reported(db, b.reported)
                moved = dep_store.write_reported_states(db, b.rollout)
            if b.metrics:
                fleet_store.write_metrics(db, b.metrics, [(m, d) for d, m in b.summaries.items()])
            if b.records:
                new = records_store.insert_records(db, b.records)
                self.counters["records"] += new
                self.counters["duplicate_records"] += len(b.records) - new
            if b.results:
                fleet_store.write_command_results(db, b.results)
        self.counters["batches"] += 1
        if (moved or b.reported or b.presence) and self.on_reported:
            self.on_reported()


# ---- one handler per topic kind ---------------------------------------------------------------


def _status(b: _Batch, device_id: str, data: dict, at: float) -> None:
    state = data.get("state")
    if state not in ("online", "offline"):
        raise ProtocolError(f"status.state: expected online/offline, got {state!r}")
    b.presence.append((1 if state == "online" else 0, at, json.dumps(data), device_id))


def _reported(b: _Batch, device_id: str, data: dict, at: float) -> None:
    name, revision, state = data.get("deployment"), data.get("revision"), data.get("state")
    if not isinstance(name, str) or not name:
        raise ProtocolError("reported.deployment: expected a name")
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise ProtocolError("reported.revision: expected an integer")
    if state not in protocol.STATES:
        raise ProtocolError(f"reported.state: {state!r} is not one of {', '.join(protocol.STATES)}")
    seq = data.get("seq", 0)
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
    reason = str(data.get("reason") or "")[:1000]
    sha = str(data.get("sha256") or "")[:64]
    b.reported.append((device_id, name, revision, state, reason, sha, seq, _num(data.get("ts")) or at))
    row_state = {"disabled": "healthy", "rolled_back": "failed"}.get(state, state)
    if data.get("retry") and state == "failed":
        row_state = "downloading"  # the agent retries by itself (hub unreachable): still in flight
    b.rollout.append((row_state, reason, device_id, name, revision))


def _metrics(b: _Batch, device_id: str, data: dict, at: float) -> None:
    lat = data.get("latency_ms") if isinstance(data.get("latency_ms"), dict) else {}
    outbox = data.get("outbox") if isinstance(data.get("outbox"), dict) else {}
    ts = _num(data.get("ts")) or at
    row = (device_id, ts, _num(data.get("inferences"), int), _num(data.get("errors"), int), _num(lat.get("p50")),
           _num(lat.get("p95")), _num(outbox.get("depth"), int), _num(data.get("cpu_percent")),
           _num(data.get("memory_mb")))
    b.metrics.append(row)
    b.summaries[device_id] = json.dumps({
        "ts": ts, "inferences": row[2], "errors": row[3], "p50_ms": row[4], "p95_ms": row[5], "outbox_depth": row[6],
        "outbox": outbox, "cpu_percent": row[7], "memory_mb": row[8], "models": data.get("models"),
        "mining": data.get("mining")})


def _predictions(b: _Batch, device_id: str, data: dict, at: float) -> None:
    records = data.get("records")
    if not isinstance(records, list):
        raise ProtocolError("predictions.records: expected a list")
    rows = []  # all or nothing: a batch with one bad record is dropped whole
    for rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or not 0 < len(rec["id"]) <= _ID_MAX:
            raise ProtocolError("predictions.records[]: each record needs a string id")
        dets = rec.get("detections")
        rev = rec.get("revision")
        rows.append((
            rec["id"], device_id, str(rec.get("deployment") or "")[:64],
            rev if isinstance(rev, int) and not isinstance(rev, bool) else None,
            _num(rec.get("ts")) or at, len(dets) if isinstance(dets, list) else 0, _num(rec.get("latency_ms")),
            json.dumps(rec, separators=(",", ":")),
        ))
    b.records.extend(rows)


def _cmd_result(b: _Batch, device_id: str, data: dict, at: float) -> None:
    cid = data.get("id")
    if not isinstance(cid, str | int) or isinstance(cid, bool):
        raise ProtocolError("cmd/result.id: expected a command id")
    b.results.append((1 if data.get("ok") else 0, json.dumps(data.get("result")), str(data.get("error") or ""),
                      _num(data.get("ts")) or at, str(cid), device_id))


_HANDLERS: dict[str, Callable[[_Batch, str, dict, float], None]] = {
    "status": _status, "reported": _reported, "metrics": _metrics, "predictions": _predictions,
    "cmd/result": _cmd_result,
}
