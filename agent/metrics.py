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


class InferStats:
    """Per-model OIP ``/infer`` timings, cumulative, as Triton's model statistics extension reports them.

    ``success`` is the server-side time of a request: from its body being in hand (waitress has
    read it) to the response body being ready to send; ``compute_input`` / ``compute_infer`` /
    ``compute_output`` split it into parsing, the model run and encoding. Served by
    ``GET /v2/models/{name}/stats``, which ``tritonclient``'s ``get_inference_statistics`` reads.
    """

    _PARTS = ("success", "fail", "compute_input", "compute_infer", "compute_output")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], dict] = {}

    def _entry(self, name: str, version: str) -> dict:
        entry = self._models.get((name, version))
        if entry is None:
            entry = {"last_inference": 0, "inference_count": 0,
                     **{part: [0, 0] for part in self._PARTS}}
            self._models[(name, version)] = entry
        return entry

    def observe(self, name: str, version: str, total_ns: int, parse_ns: int, run_ns: int, encode_ns: int) -> None:
        """One successful request: its total server-side time and its three parts, in nanoseconds."""
        with self._lock:
            e = self._entry(name, version)
            e["last_inference"] = int(time.time() * 1000)
            e["inference_count"] += 1
            for part, ns in (("success", total_ns), ("compute_input", parse_ns),
                             ("compute_infer", run_ns), ("compute_output", encode_ns)):
                e[part][0] += 1
                e[part][1] += ns

    def fail(self, name: str, version: str, total_ns: int) -> None:
        """One request that was answered with an error after it reached a served model."""
        with self._lock:
            e = self._entry(name, version)
            e["fail"][0] += 1
            e["fail"][1] += total_ns

    def report(self, name: str, version: str) -> dict:
        """One ``model_stats`` item: ``{name, version, last_inference, inference_count, execution_count,
        inference_stats: {success|fail|queue|compute_*: {count, ns}}, batch_stats: []}``."""
        with self._lock:
            e = self._entry(name, version)
            stats = {part: {"count": e[part][0], "ns": e[part][1]} for part in self._PARTS}
            stats["queue"] = {"count": e["success"][0], "ns": 0}  # no queue: a worker thread runs it at once
            return {"name": name, "version": version, "last_inference": e["last_inference"],
                    "inference_count": e["inference_count"], "execution_count": e["inference_count"],
                    "inference_stats": stats, "batch_stats": []}
