"""Store-and-forward uplink: a bounded SQLite outbox, drained in order to MQTT and the hub.

Two kinds of items wait in the outbox: ``prediction`` records (sent as QoS 1 batches on the
``predictions`` topic) and ``capture`` frames (POSTed to ``{hub}/api/v1/devices/{id}/captures``
as multipart: ``frame`` = the image bytes, ``meta`` = JSON with the prediction record, scores and
selection reason). An item leaves the outbox only after the broker acknowledged it (PUBACK) or
the hub answered 2xx, so broker or hub outages and agent restarts lose nothing; delivery is
at-least-once (records carry ``id`` for de-duplication). The outbox is bounded in rows and bytes:
the oldest items are dropped first, and drops are counted (reported in metrics).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from agent import protocol

log = logging.getLogger(__name__)
KINDS = ("prediction", "capture")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    payload TEXT NOT NULL,
    blob BLOB,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_kind ON items(kind, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Outbox:
    """A bounded FIFO of prediction records and capture frames in one SQLite file (WAL)."""

    def __init__(self, path: str | Path, max_rows: int = 10000, max_bytes: int = 256 * 1024**2):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills (not power loss)
        self._db.executescript(_SCHEMA)
        self._rows, self._bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _bump(self, name: str, n: int = 1) -> None:
        self._db.execute("INSERT INTO counters(name, value) VALUES(?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def put(self, kind: str, payload: dict, blob: bytes | None = None) -> int:
        """Append an item; drops the oldest items (counted) beyond the row or byte bound."""
        if kind not in KINDS:
            raise ValueError(f"unknown outbox kind {kind!r}")
        text = json.dumps(payload, separators=(",", ":"))
        size = len(text) + (len(blob) if blob else 0)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("INSERT INTO items(kind, created, payload, blob, size) VALUES(?,?,?,?,?)",
                                       (kind, time.time(), text, blob, size))
                self._rows += 1
                self._bytes += size
                while self._rows > self.max_rows or (self._bytes > self.max_bytes and self._rows > 1):
                    old = self._db.execute("SELECT id, kind, size FROM items ORDER BY id LIMIT 1").fetchone()
                    self._db.execute("DELETE FROM items WHERE id = ?", (old[0],))
                    self._bump(f"dropped_{old[1]}")
                    self._rows -= 1
                    self._bytes -= old[2]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return int(cur.lastrowid)

    def peek(self, kind: str, limit: int) -> list[tuple[int, dict, bytes | None]]:
        """The oldest ``limit`` items of ``kind``: ``(id, payload, blob)``."""
        with self._lock:
            rows = self._db.execute("SELECT id, payload, blob FROM items WHERE kind = ? ORDER BY id LIMIT ?",
                                    (kind, limit)).fetchall()
        return [(r[0], json.loads(r[1]), r[2]) for r in rows]

    def ack(self, ids: list[int], counter: str = "") -> None:
        """Remove delivered (or refused, with ``counter`` bumped) items."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(ids))
            size = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items WHERE id IN ({marks})",
                                    ids).fetchone()
            self._db.execute(f"DELETE FROM items WHERE id IN ({marks})", ids)
            if counter:
                self._bump(counter, len(ids))
            self._db.execute("COMMIT")
            self._rows -= size[0]
            self._bytes -= size[1]

    def next_counter(self, name: str) -> int:
        """Increment and return a persistent counter (batch numbers)."""
        with self._lock:
            self._bump(name)
            return int(self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def stats(self) -> dict:
        """``{depth, bytes, by_kind: {...}, dropped: {...}, sent: {...}}``."""
        with self._lock:
            by_kind = dict(self._db.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind").fetchall())
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {
            "depth": self._rows, "bytes": self._bytes, "by_kind": {k: by_kind.get(k, 0) for k in KINDS},
            "dropped": {k: counters.get(f"dropped_{k}", 0) for k in KINDS},
            "sent": {k: counters.get(f"sent_{k}", 0) for k in KINDS},
            "refused": counters.get("refused_capture", 0),
        }


Publisher = Callable[[str, dict], bool]  # publish(kind, payload) -> acknowledged?


class Uplink:
    """Drains an :class:`Outbox`: prediction batches through ``publish``, captures over HTTP."""

    def __init__(self, outbox: Outbox, device_id: str, publish: Publisher | None, hub_url: str = "",
                 token: str = "", batch_size: int = 50, timeout: float = 10.0):
        self.outbox = outbox
        self.device_id = device_id
        self.publish = publish
        self.hub_url = hub_url.rstrip("/")
        self.token = token
        self.batch_size = batch_size
        self.timeout = timeout
        self._lock = threading.Lock()  # one drain at a time keeps the order

    def drain(self) -> dict:
        """Send what can be sent now; returns ``{"predictions": n, "captures": n}`` delivered."""
        with self._lock:
            return {"predictions": self._drain_predictions(), "captures": self._drain_captures()}

    def _drain_predictions(self) -> int:
        sent = 0
        while self.publish is not None:
            items = self.outbox.peek("prediction", self.batch_size)
            if not items:
                break
            batch = self.outbox.next_counter("batch")
            payload = protocol.prediction_batch(self.device_id, batch, [p for _, p, _ in items])
            if not self.publish("predictions", payload):
                break  # broker down or no PUBACK in time: the items stay, in order
            self.outbox.ack([i for i, _, _ in items], "sent_prediction")
            sent += len(items)
        return sent

    def _drain_captures(self) -> int:
        if not self.hub_url:
            return 0
        sent = 0
        url = f"{self.hub_url}/api/v1/devices/{self.device_id}/captures"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        while True:
            items = self.outbox.peek("capture", 1)
            if not items:
                break
            item_id, meta, blob = items[0]
            name = f"{meta.get('record', {}).get('id', item_id)}.{meta.get('format', 'jpg')}"
            try:
                resp = requests.post(url, headers=headers, timeout=self.timeout,
                                     files={"frame": (name, blob or b"", meta.get("mime", "application/octet-stream"))},
                                     data={"meta": json.dumps(meta)})
            except requests.RequestException as exc:
                log.info("capture upload deferred: %s", exc)
                break
            if 200 <= resp.status_code < 300:
                self.outbox.ack([item_id], "sent_capture")
                sent += 1
            elif resp.status_code in (408, 429) or resp.status_code >= 500:
                log.info("capture upload deferred: hub answered %s", resp.status_code)
                break
            else:  # the hub refuses this item for good: drop it, count it, keep the rest flowing
                log.warning("capture %s refused by the hub (%s): %s", item_id, resp.status_code, resp.text[:200])
                self.outbox.ack([item_id], "refused_capture")
        return sent
