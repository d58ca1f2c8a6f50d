"""`scripts/demo.sh --quick`, the README's first command, run as a user runs it: the whole loop from an empty
workspace to the summary (train, evaluate, convert, a real agent process over the embedded Mosquitto,
deploy, /v1/detect, records and frames back, mining), then a second run that reuses what the first made."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.mqtt]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(home: Path, ports: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "YMIR_HOME": str(home), "DEMO_SERVE": "0", **{k: str(v) for k, v in ports.items()}}
    return subprocess.run(["bash", "scripts/demo.sh", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_demo_quick_runs_the_whole_loop_and_a_second_run_reuses_it(tmp_path):
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it as root)")
    ports = {"DEMO_PORT": _free_port(), "DEMO_MQTT_PORT": _free_port(), "DEMO_AGENT_PORT": _free_port()}
    home = tmp_path / "ws"
    first = _run(home, ports)
    out = first.stdout
    assert first.returncode == 0, out[-3000:] + first.stderr[-3000:]
    for stage in ("workspace", "hub", "data", "train", "evaluate", "convert", "device", "deploy", "detect", "mine",
                  "summary"):
        assert f"\n== {stage}: " in out, stage
    summary = out[out.index("== summary"):]
    assert re.search(r"onnx-int8 vs fp32 +mAP@0\.5 0\.\d{3} vs 0\.\d{3}", summary), summary
    assert "openvino-int8 vs fp32" in summary and "deployment 1 completed" in summary
    sent = int(re.search(r"agent /v1/detect +(\d+) images", summary).group(1))
    back = re.search(r"back at the hub +(\d+) prediction records, (\d+) selected frames \((\d+) new", summary)
    records, frames, new = (int(v) for v in back.groups())
    assert sent == 24 and records >= sent and frames >= 1 and new >= 1
    assert re.search(r"#1 +[0-9a-f]{12} score \d\.\d{4}", summary), summary
    assert f"hub at http://127.0.0.1:{ports['DEMO_PORT']}  login: admin / " in summary
    assert "\r" not in first.stderr  # progress into a pipe: lines, not carriage-return frames

    second = _run(home, ports)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = second.stdout
    assert "already trained" in again and "$ ymir-hub dataset import" not in again
    assert "$ ymir-hub model convert" not in again and "$ ymir-hub device add" not in again
    assert "$ ymir-hub algorithm publish" not in again and "== summary" in again
    # the same 24 images again: the agent selects frames and the hub takes them, though it holds them already
    back = re.search(r"back at the hub +(\d+) prediction records, (\d+) selected frames", again)
    assert int(back.group(1)) >= 24 and int(back.group(2)) >= 1, again[again.index("== summary"):]


def test_a_failing_stage_is_named(tmp_path):
    """A port already taken stops the demo at the hub stage, saying which port and which setting moves it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        r = _run(tmp_path / "ws", {"DEMO_PORT": taken, "DEMO_MQTT_PORT": _free_port(),
                                   "DEMO_AGENT_PORT": _free_port()})
    assert r.returncode == 1
    assert f"demo failed at stage 'hub': port {taken} is in use" in r.stderr and "DEMO_PORT" in r.stderr
