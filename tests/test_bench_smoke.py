"""The benchmark scripts run (tiny sizes): a figure in BENCHMARKS.md must stay reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 300) -> dict:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_benchmark_runs_every_side_but_datumaro(tmp_path):
    doc = _run("scripts/bench/import_voc.py", "--images", "60", "--repeat", "1", "--warmup", "0",
               "--skip-datumaro", "--with-hub", "--with-extract", "--out", str(tmp_path))
    assert doc["ours"]["images"] == 60 and doc["ours"]["skipped"] == 0
    assert doc["hub"]["runs"] and doc["extract"]["images"] == 60 and doc["fresh_process_per_run"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("runs-")]  # work dirs removed


def test_inspect_benchmark_runs(tmp_path):
    doc = _run("scripts/bench/inspect_image.py", "--images", "50")
    assert doc["images"] == 50 and doc["inspect_us"] > 0 and doc["decode_us"] > 0


def test_oip_floor_benchmark_runs():
    pytest.importorskip("tritonclient.http")
    doc = _run("scripts/bench/oip_client_floor.py")
    assert 0 < doc["median_ms"] < 1000
