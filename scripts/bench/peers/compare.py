"""The agent's OIP server against MLServer and KServe serving the same ONNX model (``agent_http.py --peers``).

Every target is driven by the same client (``drive.py``: tritonclient 2.73, binary tensors where
the server takes them) in separate processes, in the same run, paths interleaved in rounds:

* ``agent``          ``ymir-agent serve``, tritonclient.http, binary tensor extension;
* ``kserve_http``    KServe ``ModelServer`` + ``kserve_onnx.py``, tritonclient.http, binary tensors;
* ``kserve_grpc``    the same server through tritonclient.grpc (raw tensor bytes);
* ``mlserver_grpc``  ``mlserver start`` + ``mlserver_onnx.py``, tritonclient.grpc (raw tensor bytes);
* ``mlserver_http``  the same through tritonclient.http with JSON tensors: MLServer's REST has no
                     binary tensor extension (SeldonIO/MLServer issue 324, open), so a binary body fails.

Latency: batch 1, one client, p50/p99. Throughput: ``concurrency`` clients (own processes) calling
back to back. Server-side time per request: what each server reports itself (the agent's
``/v2/models/{name}/stats``; the peers' Prometheus histograms, see ``servers.TIMING_SOURCE``),
as the mean over the phase; plus the CPU the server's process tree used per call, from /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from peers import servers

HERE = Path(__file__).resolve().parent
GOALS = {"p50": "agent p50 <= best peer p50", "p99": "agent p99 <= best peer p99",
         "throughput": "agent throughput >= 1.5 x best peer throughput"}


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its descendants (MLServer's workers are child processes)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    keep, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in keep]
        keep.update(kids)
        frontier.extend(kids)
    return sum(cpu.get(p, 0.0) for p in keep)


@dataclass
class Target:
    """One server + protocol the client drives."""

    name: str
    protocol: str  # http | grpc
    python: Path
    port: int
    pid: int
    timings: Callable[[], tuple[float, float]]  # (server-side seconds, requests) so far
    json_tensors: bool = False
    drivers: list[subprocess.Popen] = field(default_factory=list)

    def spawn(self, size: int) -> subprocess.Popen:
        cmd = [str(self.python), str(HERE / "drive.py"), "--protocol", self.protocol,
               "--url", f"127.0.0.1:{self.port}", "--size", str(size)] + (["--json"] if self.json_tensors else [])
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.drivers.append(proc)
        return proc

    def close(self) -> None:
        for d in self.drivers:
            if d.poll() is None:
                try:
                    d.stdin.write("quit\n")
                    d.stdin.flush()
                    d.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    d.kill()
        self.drivers.clear()


def ask(proc: subprocess.Popen, line: str) -> dict:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    out = proc.stdout.readline()
    if not out:
        raise RuntimeError(f"client driver exited ({proc.returncode}) on {line!r}")
    return json.loads(out)


def agent_timings(port: int) -> Callable[[], tuple[float, float]]:
    def read() -> tuple[float, float]:
        doc = requests.get(f"http://127.0.0.1:{port}/v2/models/bench/stats", timeout=10).json()
        ok = doc["model_stats"][0]["inference_stats"]["success"]
        return ok["ns"] / 1e9, float(ok["count"])
    return read


def _pct(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3), "min_ms": round(float(a.min()), 3)}


def _server_mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    n = after[1] - before[1]
    return round((after[0] - before[0]) * 1000 / n, 3) if n > 0 else None


def run(model: Path, size: int, expected: dict[str, np.ndarray], agent_port: int, agent_pid: int, *,
        peers: list[str], threads: int, iters: int, warmup: int, concurrency: int, calls: int,
        mlserver_workers: int, kserve_workers: int) -> dict:
    """Start ``peers``, drive every target, return the figures and the goals' ratios."""
    skipped: dict[str, str] = {}
    started: list[servers.Peer] = []
    grpc_py = servers.grpc_client_python()
    targets = [Target("agent", "http", Path(sys.executable), agent_port, agent_pid, agent_timings(agent_port))]
    workers = {"mlserver": mlserver_workers, "kserve": kserve_workers}
    try:
        for name in peers:
            peer = servers.start(name, model, threads, workers[name])
            if isinstance(peer, str):
                skipped[name] = peer
                continue
            started.append(peer)
            if name == "kserve":
                targets.append(Target("kserve_http", "http", Path(sys.executable), peer.http_port, peer.proc.pid,
                                      lambda p=peer: p.timings("http")))
            if grpc_py is not None:
                targets.append(Target(f"{name}_grpc", "grpc", grpc_py, peer.grpc_port, peer.proc.pid,
                                      lambda p=peer: p.timings("grpc")))
            else:
                skipped[f"{name}_grpc"] = "no interpreter with tritonclient.grpc (.venvs/mlserver provides one)"
            if name == "mlserver":
                targets.append(Target("mlserver_http", "http", Path(sys.executable), peer.http_port, peer.proc.pid,
                                      lambda p=peer: p.timings("http"), json_tensors=True))
        return _measure(targets, size, expected, iters, warmup, concurrency, calls) | {
            "skipped": skipped, "peer_settings": {"onnxruntime_threads": threads, "mlserver_parallel_workers":
                                                  mlserver_workers, "kserve_workers": kserve_workers},
            "server_side_source": {"agent": "GET /v2/models/bench/stats (success: body in hand to answer ready)",
                                   **{p.name: servers.TIMING_SOURCE[p.name] for p in started}},
        }
    finally:
        for t in targets:
            t.close()
        for p in started:
            p.stop()


def _measure(targets: list[Target], size: int, expected: dict[str, np.ndarray], iters: int, warmup: int,
             concurrency: int, calls: int) -> dict:
    equal: dict[str, bool] = {}
    main = {t.name: t.spawn(size) for t in targets}
    with tempfile.TemporaryDirectory() as tmp:
        for t in targets:
            path = Path(tmp) / f"{t.name}.npz"
            ask(main[t.name], f"check {path}")
            got = np.load(path)
            equal[t.name] = all(np.array_equal(got[k], v) for k, v in expected.items())
    for t in targets:
        if warmup:
            ask(main[t.name], f"run {warmup}")
    rounds = 5
    per = max(1, iters // rounds)
    lat: dict[str, list[float]] = {t.name: [] for t in targets}
    acc = {t.name: {"client_cpu": 0.0, "server_cpu": 0.0, "server_s": 0.0, "server_n": 0.0} for t in targets}
    for _ in range(rounds):
        for t in targets:
            s0, c0 = t.timings(), tree_cpu(t.pid)
            out = ask(main[t.name], f"run {per}")
            s1, c1 = t.timings(), tree_cpu(t.pid)
            lat[t.name] += out["ms"]
            a = acc[t.name]
            a["client_cpu"] += out["cpu_s"]
            a["server_cpu"] += c1 - c0
            a["server_s"] += s1[0] - s0[0]
            a["server_n"] += s1[1] - s0[1]
    results: dict[str, dict] = {}
    for t in targets:
        a, n = acc[t.name], len(lat[t.name])
        results[t.name] = {"protocol": t.protocol + (" json tensors" if t.json_tensors else " binary tensors"),
                           "outputs_equal_in_process": equal[t.name], "latency": _pct(lat[t.name]) | {
                               "server_side_mean_ms": round(a["server_s"] * 1000 / a["server_n"], 3) if a["server_n"] else None,
                               "cpu_client_ms_per_call": round(a["client_cpu"] * 1000 / n, 3),
                               "cpu_server_ms_per_call": round(a["server_cpu"] * 1000 / n, 3)}}
    for t in targets:  # throughput: `concurrency` clients at once, one target at a time
        clients = [main[t.name]] + [t.spawn(size) for _ in range(concurrency - 1)]
        for c in clients[1:]:
            ask(c, f"run {max(2, warmup // 4)}")
        s0, c0 = t.timings(), tree_cpu(t.pid)
        for c in clients:
            c.stdin.write(f"run {calls}\n")
            c.stdin.flush()
        outs = [json.loads(c.stdout.readline()) for c in clients]
        s1, c1 = t.timings(), tree_cpu(t.pid)
        total = calls * len(clients)
        span = max(o["t1"] for o in outs) - min(o["t0"] for o in outs)
        results[t.name]["throughput"] = {
            "clients": len(clients), "calls": total, "req_per_s": round(total / span, 1),
            **{k: v for k, v in _pct([m for o in outs for m in o["ms"]]).items() if k in ("p50_ms", "p99_ms")},
            "server_side_mean_ms": _server_mean_ms(s0, s1),
            "cpu_server_ms_per_call": round((c1 - c0) * 1000 / total, 3)}
        t.close()
    return {"targets": results, "goals": _goals(results), "latency_calls": rounds * per,
            "throughput_calls_per_client": calls}


def _goals(results: dict[str, dict]) -> dict:
    peers = {k: v for k, v in results.items() if k != "agent"}
    if not peers or "agent" not in results:
        return {"note": "no peer ran: nothing to compare"}
    agent = results["agent"]
    best_p50 = min(peers, key=lambda k: peers[k]["latency"]["p50_ms"])
    best_p99 = min(peers, key=lambda k: peers[k]["latency"]["p99_ms"])
    best_tp = max(peers, key=lambda k: peers[k]["throughput"]["req_per_s"])
    r50 = agent["latency"]["p50_ms"] / peers[best_p50]["latency"]["p50_ms"]
    r99 = agent["latency"]["p99_ms"] / peers[best_p99]["latency"]["p99_ms"]
    rtp = agent["throughput"]["req_per_s"] / peers[best_tp]["throughput"]["req_per_s"]
    return {
        "p50": {"goal": GOALS["p50"], "best_peer": best_p50, "agent_over_peer": round(r50, 3), "met": r50 <= 1.0},
        "p99": {"goal": GOALS["p99"], "best_peer": best_p99, "agent_over_peer": round(r99, 3), "met": r99 <= 1.0},
        "throughput": {"goal": GOALS["throughput"], "best_peer": best_tp, "agent_over_peer": round(rtp, 3),
                       "met": rtp >= 1.5},
    }

