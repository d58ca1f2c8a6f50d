"""Benchmark: batch-1 detector inference through the agent's HTTP server vs in-process, same run.

    .venv/bin/python scripts/bench/agent_http.py [--model model.onnx] [--size 256] [--iters 200]
        [--warmup 20] [--threads 0] [--server-threads 4] [--peers mlserver,kserve|none]
        [--peer-iters 200] [--concurrency 4] [--calls 100] [--mlserver-workers 1] [--kserve-workers 1]

Paths timed (median and p95 of ``--iters`` calls each, interleaved in rounds so drift hits all):

* ``run``        ``Detector.run`` in this process (raw tensors, the OIP baseline);
* ``oip``        tritonclient.http ``infer`` with binary tensors in and out, against
                 ``ymir-agent serve`` running as its own process;
* ``detect``     ``Detector.detect`` on JPEG bytes in this process (the /v1/detect baseline);
* ``v1_detect``  ``POST /v1/detect`` with the same JPEG as the raw body (requests, keep-alive).

Without ``--model`` the built-in executor's detector (random weights, 3 classes) is exported at
``--size``. The goal is ``oip / run <= 1.10``. The load average is printed too: on a shared
machine every extra thread wake-up of the HTTP path waits for a core, which the in-process call
never does; p10 and min show the path without that wait, and the CPU time per call of this
process (the client) and of the server process (from /proc) the work each path costs whatever
the load.

Then (``--peers``, default both; ``none`` skips) the same agent server against MLServer and
KServe serving the same ONNX file with the same onnxruntime settings, from their own venvs
(``.venvs/mlserver``, ``.venvs/kserve``, made by ``scripts/setup.sh``; a missing one is skipped
with the reason): batch-1 p50/p99 with one client, throughput with ``--concurrency`` clients,
and the server-side time per request each server reports itself; ratios against the goals
(agent p50 and p99 <= the best peer's, throughput >= 1.5x the best peer's). See
``scripts/bench/peers/compare.py``. The JSON goes to stdout; ``--json`` writes it to a file too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def export_model(size: int, folder: Path) -> Path:
    import torch

    from detkit.manifest import ModelSpec
    from executor.export import export_onnx
    from executor.model import Arch, Detector

    torch.manual_seed(0)
    model = Detector(Arch(num_classes=3)).eval()
    spec = ModelSpec(class_names=["circle", "square", "triangle"], input_size=size, stride=4)
    return export_onnx(model, spec, folder / "bench.onnx")


def sample_jpeg(size: int) -> bytes:
    import io

    from detkit.synth import make_scene

    img, _ = make_scene(np.random.default_rng(0), 0)
    img = img.resize((size * 2, int(size * 1.5)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server on {port} did not come up")


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 3), "p10_ms": round(float(np.percentile(a, 10)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "min_ms": round(float(a.min()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--server-threads", type=int, default=4)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--peers", default="mlserver,kserve", help="peer servers to compare with, or 'none'")
    ap.add_argument("--peer-iters", type=int, default=200, help="batch-1 calls per target, one client")
    ap.add_argument("--concurrency", type=int, default=4, help="clients at once for the throughput figure")
    ap.add_argument("--calls", type=int, default=100, help="calls per client for the throughput figure")
    ap.add_argument("--mlserver-workers", type=int, default=1,
                    help="MLServer parallel_workers (its default 1: inference in one worker process; 0: in the server process)")
    ap.add_argument("--kserve-workers", type=int, default=1, help="KServe ModelServer --workers (uvicorn processes)")
    args = ap.parse_args()
    peers = [] if args.peers in ("", "none") else args.peers.split(",")
    unknown = sorted(set(peers) - {"mlserver", "kserve"})
    if unknown:
        ap.error(f"--peers: unknown {unknown}; known: mlserver, kserve")

    import requests
    import tritonclient.http as httpclient

    from detkit.runtime import load

    load_before = os.getloadavg()[0]
    tmp = tempfile.TemporaryDirectory()
    model_path = args.model or export_model(args.size, Path(tmp.name))
    det = load(model_path, threads=args.threads)
    size = det.spec.input_size
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    jpeg = sample_jpeg(size)

    port = free_port()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "agent", "serve", str(model_path), "--port", str(port), "--name", "bench",
           "--threads", str(args.server_threads), "--option", f"threads={args.threads}"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
        session = requests.Session()
        inp = httpclient.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        outs = [httpclient.InferRequestedOutput(o["name"], binary_data=True) for o in det.outputs]
        url = f"http://127.0.0.1:{port}/v1/detect?model=bench"

        def run_local():
            det.run({"images": x})

        def run_oip():
            res = client.infer("bench", [inp], outputs=outs)
            res.as_numpy("heatmap")

        def detect_local():
            det.detect(jpeg)

        def detect_http():
            r = session.post(url, data=jpeg)
            r.raise_for_status()

        paths = {"run": run_local, "oip": run_oip, "detect": detect_local, "v1_detect": detect_http}
        # correctness first: the OIP path returns the in-process tensors bit for bit
        res = client.infer("bench", [inp], outputs=outs)
        local = det.run({"images": x})
        same = all(np.array_equal(res.as_numpy(k), v) for k, v in local.items())
        for fn in paths.values():
            for _ in range(args.warmup):
                fn()
        times: dict[str, list[float]] = {k: [] for k in paths}
        rounds = 10
        per = max(1, args.iters // rounds)
        cpu = {k: [0.0, 0.0] for k in paths}  # CPU seconds: [this process (client), the server process]
        for _ in range(rounds):
            for name, fn in paths.items():
                c0, s0 = time.process_time(), server_cpu(server.pid)
                for _ in range(per):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append((time.perf_counter() - t0) * 1000)
                cpu[name][0] += time.process_time() - c0
                cpu[name][1] += server_cpu(server.pid) - s0
        client.close()
        if peers:
            from peers import compare

            versus = compare.run(Path(model_path), size, local, port, server.pid, peers=peers,
                                 threads=args.threads, iters=args.peer_iters, warmup=args.warmup,
                                 concurrency=args.concurrency, calls=args.calls,
                                 mlserver_workers=args.mlserver_workers, kserve_workers=args.kserve_workers)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    results = {k: stats(v) | {"cpu_client_ms_per_call": round(cpu[k][0] * 1000 / len(v), 3),
                              "cpu_server_ms_per_call": round(cpu[k][1] * 1000 / len(v), 3)}
               for k, v in times.items()}
    def ratio(a: str, b: str, key: str) -> float:
        return round(results[a][key] / results[b][key], 3)

    out = {
        "model": str(args.model or f"executor detector, random weights, {size}px"),
        "input": list(x.shape), "iters": per * rounds, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "server_threads": args.server_threads, "ort_threads": args.threads,
        "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "oip_outputs_equal_in_process": same, "results": results,
        "oip_over_run": {k: ratio("oip", "run", k) for k in ("median_ms", "p10_ms", "min_ms")},
        "v1_detect_over_detect": {k: ratio("v1_detect", "detect", k) for k in ("median_ms", "p10_ms", "min_ms")},
    }
    if peers:
        out["versus_peers"] = versus
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
