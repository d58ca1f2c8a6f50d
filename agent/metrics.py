"""Inference counters and latency percentiles, plus a small host summary (CPU, memory)."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections import deque

import numpy as np


class Stats:
    """Thread-safe inference statistics: totals since start and a window since the last snapshot."""

    def __init__(self, window: int = 4096):
        self._lock = threading.Lock()
        self._lat: deque[float] = deque(maxlen=window)
        self.inferences = 0
        self.errors = 0
        self._win_inferences = 0
        self._win_errors = 0
        self._since = time.monotonic()

    def observe(self, seconds: float, ok: bool = True) -> None:
        """Record one inference (its latency) or one error."""
        with self._lock:
            if ok:
                self.inferences += 1
                self._win_inferences += 1
                self._lat.append(seconds * 1000.0)
            else:
                self.errors += 1
                self._win_errors += 1

    def snapshot(self, reset: bool = True) -> dict:
        """``{inferences, errors, latency_ms: {p50, p95}, interval_s, total: {...}}`` for the window."""
        with self._lock:
            lat = np.fromiter(self._lat, dtype=np.float64, count=len(self._lat))
            now = time.monotonic()
            out = {
                "inferences": self._win_inferences,
                "errors": self._win_errors,
                "latency_ms": {
                    "p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                    "p95": round(float(np.percentile(lat, 95)), 3) if lat.size else None,
                },
                "interval_s": round(now - self._since, 3),
                "total": {"inferences": self.inferences, "errors": self.errors},
            }
            if reset:
                self._lat.clear()
                self._win_inferences = self._win_errors = 0
                self._since = now
            return out


class ProcessProbe:
    """CPU percent (of one core) and resident memory of this process, from ``/proc`` or psutil."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def sample(self) -> dict:
        now, cpu = time.monotonic(), time.process_time()
        dt = now - self._last[0]
        pct = 100.0 * (cpu - self._last[1]) / dt if dt > 0 else 0.0
        self._last = (now, cpu)
        return {"cpu_percent": round(pct, 1), "memory_mb": round(_rss_bytes() / 2**20, 1)}


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # fallback where /proc is absent

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def hardware_summary() -> dict:
    """What the hub shows about a device: OS, machine, CPUs, memory, GPUs seen by nvidia-smi paths."""
    mem_total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "os": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
        "memory_mb": round(mem_total / 2**20) if mem_total else None,
        "gpu": os.path.exists("/dev/nvidia0"),
    }
