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


@pytest.mark.slow
def test_agent_http_benchmark_against_peer_servers():
    """agent_http.py serves one model from the agent, MLServer and KServe (their own venvs, made by
    scripts/setup.sh) and drives each with the same tritonclient: every target answers the in-process
    tensors bit for bit and reports its server-side time; the goals' ratios come out."""
    pytest.importorskip("tritonclient.http")
    peers = [p for p in ("mlserver", "kserve") if list((ROOT / ".venvs" / p).glob(f".ymir-{p}-*"))]  # setup.sh's stamp
    if not peers:
        pytest.skip("neither .venvs/mlserver nor .venvs/kserve: scripts/setup.sh could not install them here")
    out = subprocess.run([sys.executable, "scripts/bench/agent_http.py", "--iters", "10", "--warmup", "2",
                          "--threads", "1", "--size", "64", "--peers", ",".join(peers), "--peer-iters", "5",
                          "--calls", "3", "--concurrency", "2", "--mlserver-workers", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)["versus_peers"]
    assert not doc["skipped"].get("mlserver") and not doc["skipped"].get("kserve"), doc["skipped"]
    expected = {"agent"} | {f"{p}_{protocol}" for p in peers for protocol in ("http", "grpc")}
    assert set(doc["targets"]) == expected
    for name, t in doc["targets"].items():
        assert t["outputs_equal_in_process"], name
        assert t["latency"]["p50_ms"] > 0 and t["throughput"]["req_per_s"] > 0, name
        assert t["latency"]["server_side_mean_ms"] > 0, name
    assert set(doc["goals"]) == {"p50", "p99", "throughput"}
    assert all(isinstance(g["met"], bool) and g["best_peer"] in expected - {"agent"} for g in doc["goals"].values())


def test_fleet_benchmark_counts_every_record_and_times_pages(tmp_path):
    """fleet.py at a tiny size: agents connect, every record is stored once per device, the rollout
    converges, and the page users' times come out per phase (pages answered 200)."""
    out = subprocess.run([sys.executable, "scripts/bench/fleet.py", "--agents", "20", "--procs", "1", "--batches", "3",
                          "--records", "10", "--page-users", "3", "--think-s", "0.05", "--out", str(tmp_path / "f.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["records_stored"] == doc["records_sent"] == 600 and doc["lost"] == 0
    assert doc["devices_short"] == doc["devices_over"] == doc["duplicates_stored"] == 0
    assert doc["rollout_state"] == "completed" and doc["thread_switch_us"] == 1000
    rollout = doc["pages"]["rollout"]
    assert rollout["pages"] > 0 and rollout["not_200"] == 0 and rollout["p99_ms"] > 0
