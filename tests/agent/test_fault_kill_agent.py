"""Faults: an agent serving package A receives package B and is SIGKILLed (a) while B downloads,
(b) while B is unpacked and health-checked (after its sha256 verify, before the switch), (c) right after
``current`` switched to B, before its ``healthy`` report. Restarted, it serves the last healthy model
(A, or B once B was switched in) on ``/v1/detect`` at once, never a half-written file, and the hub
hears the state of what it serves; interrupted deployments then finish.

Real agent processes (``python -m agent run``), real Mosquitto, a throttled HTTP artifact server,
real ONNX packages. Windows: (a) a throttled download, (b) a B whose health check is slow (a big
convolution whose result is multiplied by zero), (c) the documented ``test_pause_after_switch`` hook:
the switch itself is a few system calls, no test could hit it otherwise."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from agent_helpers import make_detector_onnx, sample_jpeg
from fixtures_mqtt import Collector, wait_port
from test_agent_process import spawn, stop, write_config

from agent import protocol

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
PREFIX = "ymir/v1"
IMAGE = sample_jpeg(7)


def _package(tmp_path: Path, name: str, *, scale: float = 1.0, pad_bytes: int = 0, slow: bool = False) -> bytes:
    """A model package zip of the tiny detector (``scale`` changes its boxes)."""
    from detkit.manifest import ModelSpec
    from detkit.package import pack, write_package

    folder = tmp_path / name
    model = make_detector_onnx(folder / "model.onnx", scale=scale, pad_bytes=pad_bytes)
    if slow:
        _make_slow(model)
    write_package(folder, name="tiny", version=name, spec=ModelSpec(class_names=["circle", "square", "triangle"],
                                                                    input_size=32, stride=4), model="model.onnx")
    return pack(folder, tmp_path / f"{name}.zip").read_bytes()


def _make_slow(path: Path) -> None:
    """heatmap += 0 * mean(conv7x7(resize(images, 1024 px))): the same boxes, ~0.3-1 s per run here."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    g.node.remove(next(n for n in g.node if n.op_type == "Identity" and n.output[0] == "heatmap"))
    rng = np.random.default_rng(1)
    g.initializer.extend([
        numpy_helper.from_array(np.array([], np.float32), "roi"),
        numpy_helper.from_array(np.array([1, 1, 32, 32], np.float32), "scales"),
        numpy_helper.from_array(rng.normal(0, 0.1, (64, 3, 7, 7)).astype(np.float32), "w_slow"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ])
    g.node.extend([
        helper.make_node("Resize", ["images", "roi", "scales"], ["big"], mode="nearest"),
        helper.make_node("Conv", ["big", "w_slow"], ["slow"], pads=[3, 3, 3, 3]),
        helper.make_node("ReduceMean", ["slow"], ["slow_mean"], keepdims=0),
        helper.make_node("Mul", ["slow_mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["heat0", "nothing"], ["heatmap"]),
    ])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


class Device:
    """One agent's config, process, store folder and the messages it sent."""

    def __init__(self, tmp_path: Path, broker, hub, **extra):
        self.tmp_path, self.hub = tmp_path, hub
        self.cfg, self.port = write_config(tmp_path, broker, hub, health_latency_ms=60000.0, **extra)
        self.store = tmp_path / "store"
        self.col = Collector(broker.url, [f"{PREFIX}/devices/dev1/#"])
        self.proc = None

    def start(self, cfg: Path | None = None) -> int:
        """(Re)start the agent; returns the index of the first message after the start."""
        n = len(self.col.messages)
        self.proc = spawn(cfg or self.cfg, self.tmp_path)
        return n

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def deploy(self, revision: int, data: bytes) -> str:
        art = self.hub.add(data)
        doc = protocol.desired(revision, [{"name": "det", "revision": revision, **art}])
        self.col.publish(protocol.topic(PREFIX, "dev1", "desired"), doc, retain=True)
        return art["sha256"]

    def reported(self, revision: int, state: str, start: int = 0, timeout: float = 30) -> dict:
        return self.col.wait_for(lambda t, p: t.endswith("/reported") and p["revision"] == revision
                                 and p["state"] == state, start=start, timeout=timeout)[1]

    def detect(self) -> dict:
        r = requests.post(f"http://127.0.0.1:{self.port}/v1/detect", data=IMAGE, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def slots(self) -> dict[str, dict]:
        base = self.store / "slots" / "det"
        return {p.name: json.loads((p / ".slot.json").read_text()) if (p / ".slot.json").exists() else {}
                for p in base.iterdir() if p.is_dir() and not p.is_symlink()}

    def current(self) -> str:
        return os.readlink(self.store / "slots" / "det" / "current")

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        self.col.close()


@pytest.fixture
def device(tmp_path, mosquitto, hub):
    made = []

    def make(**extra) -> Device:
        d = Device(tmp_path, mosquitto, hub, **extra)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def _serving_a(device: Device) -> tuple[str, dict]:
    """Start the agent, deploy A as revision 1; returns A's sha256 and its /v1/detect answer."""
    device.start()
    sha_a = device.deploy(1, _package(device.tmp_path, "a"))
    device.reported(1, "healthy")
    answer = device.detect()
    assert answer["sha256"] == sha_a and answer["version"] == "1"
    return sha_a, answer


def _boxes(answer: dict) -> str:
    return json.dumps(answer["detections"], sort_keys=True)


def test_killed_during_the_download_serves_a_then_finishes_b(device, hub):
    dev = device()
    sha_a, answer_a = _serving_a(dev)
    hub.throttle = 100_000.0  # bytes/s: B (~400 kB) takes about 4 s
    sha_b = dev.deploy(2, _package(dev.tmp_path, "b", scale=2.0, pad_bytes=400_000))
    part = dev.store / "downloads" / f"{sha_b}.part"
    deadline = time.monotonic() + 20
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    dev.kill()
    assert 0 < part.stat().st_size < len(hub.blobs[sha_b])
    assert not (dev.store / "downloads" / sha_b).exists()
    assert list(dev.slots()) == [dev.current()] and dev.current().endswith(sha_a[:12])

    n = dev.start()  # still throttled: the agent serves A while B downloads again
    wait_port(dev.port, timeout=30)
    answer = dev.detect()
    assert answer["sha256"] == sha_a and _boxes(answer) == _boxes(answer_a)
    assert dev.reported(1, "healthy", start=n)["reason"] == "serving revision 1 after a restart"
    dev.reported(2, "downloading", start=n)
    status = requests.get(f"http://127.0.0.1:{dev.port}/v1/models", timeout=10).json()["status"]
    assert status["deployments"]["det"]["revision"] == 1
    hub.throttle = 0.0
    dev.reported(2, "healthy", start=n, timeout=60)
    answer = dev.detect()
    assert answer["sha256"] == sha_b and answer["version"] == "2"
    assert _boxes(answer) != _boxes(answer_a), "B's boxes differ from A's (else this test proves nothing)"


def test_killed_while_b_is_health_checked_serves_a_then_finishes_b(device):
    dev = device()
    sha_a, answer_a = _serving_a(dev)
    sha_b = dev.deploy(2, _package(dev.tmp_path, "b", scale=2.0, slow=True))
    dev.reported(2, "loading")  # unpacked and verified; the health check runs for seconds
    dev.kill()
    half = {name: meta for name, meta in dev.slots().items() if name.endswith(sha_b[:12])}
    assert half and not any(m.get("healthy_at") for m in half.values()), "B was unpacked, never healthy"
    assert dev.current().endswith(sha_a[:12])

    n = dev.start()
    wait_port(dev.port, timeout=30)
    answer = dev.detect()  # B needs seconds of health checks again before it could switch
    assert answer["sha256"] == sha_a and _boxes(answer) == _boxes(answer_a)
    assert dev.reported(1, "healthy", start=n)["reason"] == "serving revision 1 after a restart"
    dev.reported(2, "healthy", start=n, timeout=60)
    answer = dev.detect()
    assert answer["sha256"] == sha_b and answer["version"] == "2"
    slots = dev.slots()
    assert dev.current().endswith(sha_b[:12]) and slots[dev.current()]["healthy_at"]
    assert not list((dev.store / "downloads").iterdir()), "the artifact is removed once B is installed"


def test_killed_right_after_the_switch_serves_b_and_says_so(device, tmp_path):
    dev = device()
    sha_a, answer_a = _serving_a(dev)
    dev.proc.send_signal(signal.SIGTERM)  # restart with the pause (same store)
    dev.proc.wait(15)
    paused = tmp_path / "agent-paused.toml"
    paused.write_text(dev.cfg.read_text() + "test_pause_after_switch = 30.0\n")
    dev.start(paused)
    sha_b = dev.deploy(2, _package(dev.tmp_path, "b", scale=2.0))
    deadline = time.monotonic() + 30
    while not dev.current().endswith(sha_b[:12]) and time.monotonic() < deadline:
        time.sleep(0.02)
    dev.kill()  # switched, not yet reported healthy (and the artifact not yet removed)
    assert dev.current().endswith(sha_b[:12]) and dev.slots()[dev.current()]["healthy_at"]
    state = json.loads((dev.store / "state.json").read_text())
    assert state["deployments"]["det"]["reported"] == [2, "loading"]
    assert (dev.store / "downloads" / sha_b).exists()

    n = dev.start()
    wait_port(dev.port, timeout=30)
    answer = dev.detect()
    assert answer["sha256"] == sha_b and _boxes(answer) != _boxes(answer_a)
    # without this report the hub would wait in "loading" until the rollout timed the device out
    assert dev.reported(2, "healthy", start=n)["reason"] == "serving revision 2 after a restart"
    assert not (dev.store / "downloads" / sha_b).exists()
    assert any(name.endswith(sha_a[:12]) and m.get("healthy_at") for name, m in dev.slots().items()), \
        "A stays as the slot to roll back to"
