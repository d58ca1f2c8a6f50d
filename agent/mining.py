"""Edge mining: turn each ``/v1/detect`` result into a prediction record, and pick frames to upload.

Selection policy (all settings in :mod:`agent.config`):

* **top-k per window**: within each ``mining_window`` seconds, the ``mining_top_k`` frames with
  the highest ``mining_score`` (at least ``mining_min_score``) are kept in memory and queued for
  upload when the window closes;
* **control share**: each frame is also picked at random with probability
  ``mining_control_share`` (reason ``control``), so the hub sees unbiased samples too;
* **rate limit**: a token bucket caps captures at ``mining_rate_per_min`` whatever the reason.

Selected frames go to the outbox as ``capture`` items with their prediction record; every record
goes to the outbox as a ``prediction`` item when ``uplink_predictions`` is on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np

from agent.config import AgentSettings
from agent.uplink import Outbox

log = logging.getLogger(__name__)


def image_format(data: bytes) -> tuple[str, str]:
    """``(extension, mime)`` from an image's magic bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg", "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    if data[:2] == b"BM":
        return "bmp", "image/bmp"
    return "bin", "application/octet-stream"


def prediction_record(model, payload: dict, ts: float | None = None) -> dict:
    """One prediction record (what the ``predictions`` topic carries), from a ``/v1/detect`` payload."""
    return {
        "id": uuid.uuid4().hex,
        "ts": ts if ts is not None else time.time(),
        "deployment": model.name,
        "revision": model.revision,
        "sha256": model.sha256,
        "width": payload.get("width"),
        "height": payload.get("height"),
        "conf": payload.get("conf"),
        "detections": payload.get("detections", []),
        "scores": payload.get("scores", {}),
        "latency_ms": payload.get("latency_ms"),
    }


class TokenBucket:
    """``rate_per_min`` tokens per minute, bursts up to ``max(1, rate_per_min)``."""

    def __init__(self, rate_per_min: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_min / 60.0
        self.capacity = max(1.0, rate_per_min)
        self.clock = clock
        self.tokens = self.capacity
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Miner:
    """Receives every detection (``observe``); ``tick`` closes mining windows."""

    def __init__(self, settings: AgentSettings, outbox: Outbox, *, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.s = settings
        self.outbox = outbox
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.bucket = TokenBucket(settings.mining_rate_per_min, clock)
        self._lock = threading.Lock()
        self._window_end = clock() + settings.mining_window
        self._heap: list[tuple[float, int, dict, bytes]] = []  # min-heap of the window's best
        self._tie = itertools.count()
        self.counts = {"observed": 0, "captured_top_k": 0, "captured_control": 0, "rate_limited": 0}

    def observe(self, model, image: bytes, payload: dict) -> dict:
        """Record one detection; returns its prediction record."""
        record = prediction_record(model, payload)
        if self.s.uplink_predictions:
            self.outbox.put("prediction", record)
        if not self.s.mining_enabled:
            return record
        score = float(record["scores"].get(self.s.mining_score, 0.0))
        with self._lock:
            self.counts["observed"] += 1
            self._maybe_close_window()
            if self.s.mining_control_share > 0 and self.rng.random() < self.s.mining_control_share:
                self._capture(record, image, "control", score)
                return record
            if self.s.mining_top_k and score >= self.s.mining_min_score and score > 0:
                item = (score, next(self._tie), record, image)
                if len(self._heap) < self.s.mining_top_k:
                    heapq.heappush(self._heap, item)
                elif score > self._heap[0][0]:
                    heapq.heapreplace(self._heap, item)
        return record

    def tick(self) -> int:
        """Close the window if it is over; returns the frames queued for upload."""
        with self._lock:
            return self._maybe_close_window()

    def flush(self) -> int:
        """Close the current window now (on shutdown, so its picks are not lost)."""
        with self._lock:
            self._window_end = self.clock()
            return self._maybe_close_window()

    def _maybe_close_window(self) -> int:
        now = self.clock()
        if now < self._window_end:
            return 0
        picked = sorted(self._heap, reverse=True)
        self._heap.clear()
        self._window_end = now + self.s.mining_window
        n = 0
        for score, _, record, image in picked:
            n += self._capture(record, image, "top_k", score)
        return n

    def _capture(self, record: dict, image: bytes, reason: str, score: float) -> int:
        if not self.bucket.take():
            self.counts["rate_limited"] += 1
            return 0
        ext, mime = image_format(image)
        meta = {"schema": 1, "record": record, "reason": reason, "score_name": self.s.mining_score,
                "score": score, "format": ext, "mime": mime}
        self.outbox.put("capture", meta, image)
        self.counts[f"captured_{reason}"] += 1
        return 1
