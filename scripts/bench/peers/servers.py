"""Start the agent's OIP peers for ``agent_http.py``: MLServer and KServe, each from its own venv.

Each peer serves the same ONNX file with the same onnxruntime settings (``ort_session.py``) on
free loopback ports. :func:`start` returns a :class:`Peer` (pid, ports, how to read its own
server-side timings) or the reason it cannot run here, e.g. its venv is missing because
``scripts/setup.sh`` could not install it. Runs in ``.venv``: stdlib and ``requests`` only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
VENVS = {"mlserver": ROOT / ".venvs" / "mlserver", "kserve": ROOT / ".venvs" / "kserve"}
STAMPS = {"mlserver": "mlserver-1.7.1", "kserve": "kserve-0.21.0"}  # what scripts/setup.sh installs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_python(peer: str) -> Path | None:
    """The peer's venv interpreter when ``scripts/setup.sh`` installed it completely, else None."""
    venv = VENVS[peer]
    py = venv / "bin" / "python"
    return py if py.is_file() and (venv / f".ymir-{STAMPS[peer]}").is_file() else None


def grpc_client_python() -> Path | None:
    """An interpreter with ``tritonclient.grpc``: .venvs/mlserver has it (MLServer depends on tritonclient
    and grpcio); .venv has only ``tritonclient[http]`` (its protobuf 7 is above tritonclient's gRPC pin)."""
    return venv_python("mlserver")


def _prom(text: str, metric: str, **labels: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram summed over the series whose labels match ``labels``."""
    total = {"sum": 0.0, "count": 0.0}
    pat = re.compile(rf"^{re.escape(metric)}_(sum|count)(?:\{{(.*)\}})? ([0-9.eE+-]+)$")
    for line in text.splitlines():
        m = pat.match(line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total[m.group(1)] += float(m.group(3))
    return total["sum"], total["count"]


@dataclass
class Peer:
    """A running peer server."""

    name: str
    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_url: str
    workdir: tempfile.TemporaryDirectory
    notes: list[str] = field(default_factory=list)

    def timings(self, protocol: str) -> tuple[float, float]:
        """(seconds, requests) so far of the server-side time the peer itself reports for ``protocol``
        (``http`` or ``grpc``) inference requests; see :data:`TIMING_SOURCE`."""
        text = requests.get(self.metrics_url, timeout=10).text
        if self.name == "mlserver":
            if protocol == "grpc":
                return _prom(text, "grpc_server_handling_seconds", grpc_method="ModelInfer")
            return _prom(text, "rest_server_request_duration_seconds", path="/v2/models/{model_name}/infer")
        parts = [_prom(text, f"request_{p}_seconds", model_name="bench") for p in ("preprocess", "predict", "postprocess")]
        return sum(p[0] for p in parts), parts[1][1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.workdir.cleanup()


TIMING_SOURCE = {
    "mlserver": "its Prometheus histograms on the metrics port: rest_server_request_duration_seconds "
                "(starlette_exporter around the whole REST request) and grpc_server_handling_seconds "
                "(py-grpc-prometheus around ModelInfer)",
    "kserve": "its Prometheus histograms request_preprocess/predict/postprocess_seconds (the model's "
              "handlers only: decoding the body and encoding the answer are outside them)",
}


def _wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/models/bench/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout:.0f} s: {log.read_text()[-1500:]}")


def _start_mlserver(py: Path, model: Path, threads: int, workers: int, work: Path) -> tuple[list[str], dict, int, int, str]:
    http, grpc, metrics = free_port(), free_port(), free_port()
    # MLServer's documented layout: settings.json (server) and <model>/model-settings.json (model).
    (work / "settings.json").write_text(json.dumps({
        "debug": False, "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "parallel_workers": workers, "metrics_dir": str(work / ".metrics"), "environments_dir": str(work / ".envs"),
        "grpc_max_message_length": 64 * 1024 * 1024,
    }))
    (work / "bench").mkdir()
    (work / "bench" / "model-settings.json").write_text(json.dumps({
        "name": "bench", "implementation": "mlserver_onnx.OnnxModel",
        "parameters": {"uri": str(model.resolve()), "extra": {"threads": threads}},
    }))
    cmd = [str(py.parent / "mlserver"), "start", str(work)]
    return cmd, {"PYTHONPATH": str(HERE)}, http, grpc, f"http://127.0.0.1:{metrics}/metrics"


def _start_kserve(py: Path, model: Path, threads: int, workers: int, work: Path) -> tuple[list[str], dict, int, int, str]:
    http, grpc = free_port(), free_port()
    cmd = [str(py), str(HERE / "kserve_onnx.py"), "--model_name", "bench", "--onnx", str(model.resolve()),
           "--threads", str(threads), "--http_port", str(http), "--grpc_port", str(grpc), "--workers", str(workers)]
    return cmd, {}, http, grpc, f"http://127.0.0.1:{http}/metrics"


_STARTERS = {"mlserver": _start_mlserver, "kserve": _start_kserve}


def start(peer: str, model: Path, threads: int, workers: int) -> Peer | str:
    """Start ``peer`` serving ``model`` as ``bench``; a string says why it cannot run here."""
    py = venv_python(peer)
    if py is None:
        return (f"{peer}: no complete {VENVS[peer].relative_to(ROOT)} (scripts/setup.sh installs it; "
                f"see its log for why it did not)")
    work = tempfile.TemporaryDirectory(prefix=f"bench-{peer}-")
    cmd, extra_env, http, grpc, metrics = _STARTERS[peer](py, model, threads, workers, Path(work.name))
    log = Path(work.name) / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | extra_env
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work.name, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, http, log)
    except RuntimeError as exc:
        proc.kill()
        proc.wait(5)
        work.cleanup()
        return f"{peer}: did not start ({exc})"
    return Peer(peer, proc, http, grpc, metrics, work)
