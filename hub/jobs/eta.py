"""A running job's estimated time left, from its progress so far (the job page and the API show it)."""

from __future__ import annotations

import time

MIN_PROGRESS = 0.02  # below this, a rate is mostly start-up cost: no estimate yet


def eta_seconds(job: dict, now: float | None = None) -> float | None:
    """Seconds left at the average rate since the job started; ``None`` when not running or too early."""
    if job.get("state") != "running" or not job.get("started_at"):
        return None
    progress = float(job.get("progress") or 0.0)
    if progress < MIN_PROGRESS or progress >= 1.0:
        return None
    elapsed = (now or time.time()) - float(job["started_at"])
    return max(0.0, elapsed * (1.0 - progress) / progress)
