"""The agent as a real process: kill -9 mid-download, broker restarts, last will, restart command, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from agent_helpers import free_port, make_detector_onnx, make_package_zip, make_plain_onnx, sample_jpeg
from fixtures_mqtt import Collector, wait_port

from agent import protocol

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
PREFIX = "ymir/v1"
ROOT = Path(__file__).resolve().parents[2]


def topic(kind: str) -> str:
    return protocol.topic(PREFIX, "dev1", kind)


def write_config(tmp_path: Path, broker, hub, **extra) -> tuple[Path, int]:
    port = free_port()
    values = {"device_id": "dev1", "mqtt_url": broker.url, "hub_url": hub.url, "device_token": hub.token,
              "store_dir": str(tmp_path / "store"), "http_bind": f"127.0.0.1:{port}", "mqtt_keepalive": 2,
              "desired_wait": 0.5, "uplink_interval": 0.2, "metrics_interval": 60.0, "mining_enabled": False,
              "download_timeout": 5.0, "mqtt_reconnect_max": 2.0, **extra}
    lines = [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {str(v).lower()}"
             if isinstance(v, bool) else f"{k} = {v}" for k, v in values.items()]
    cfg = tmp_path / "agent.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg, port


def spawn(cfg: Path, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YMIR_AGENT_")}
    log = open(tmp_path / f"agent-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def deploy(col, hub, revision: int, data: bytes) -> None:
    doc = protocol.desired(revision, [{"name": "det", "revision": revision, **hub.add(data)}])
    col.publish(topic("desired"), doc, retain=True)


def served_version(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/v2/models/det", timeout=5).json()["versions"][0]


def test_killed_mid_download_restarts_on_previous_model(tmp_path, mosquitto, hub):
    cfg, port = write_config(tmp_path, mosquitto, hub)
    col = Collector(mosquitto.url, [f"{PREFIX}/devices/dev1/#"])
    proc = spawn(cfg, tmp_path)
    try:
        deploy(col, hub, 1, make_detector_onnx(tmp_path / "a.onnx").read_bytes())
        col.wait_for(lambda t, p: t.endswith("/reported") and p["state"] == "healthy" and p["revision"] == 1)
        # revision 2 is big and arrives slowly: kill -9 while it downloads
        padded = make_detector_onnx(tmp_path / "b.onnx", scale=2.0, pad_bytes=400_000).read_bytes()
        hub.throttle = 100_000.0  # bytes/s: about 4 s for the whole file
        deploy(col, hub, 2, padded)
        col.wait_for(lambda t, p: t.endswith("/reported") and p["state"] == "downloading" and p["revision"] == 2)
        downloads = tmp_path / "store" / "downloads"
        deadline = time.monotonic() + 20  # "downloading" is reported just before the file is opened
        while time.monotonic() < deadline:
            parts = list(downloads.glob("*.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.05)
        part = parts[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        have = part.stat().st_size
        assert 0 < have < len(padded)
        # restarted: serves revision 1 at once, then resumes the download with Range and switches
        hub.throttle = 0.0
        n = len(col.messages)
        proc = spawn(cfg, tmp_path)
        wait_port(port, timeout=20)
        assert served_version(port) in ("1", "2")
        col.wait_for(lambda t, p: t.endswith("/reported") and p["state"] == "healthy" and p["revision"] == 2,
                     start=n, timeout=30)
        assert served_version(port) == "2"
        assert any(r == f"bytes={have}-" for r in hub.range_requests), hub.range_requests
        # the last will: kill -9 -> the broker publishes the retained offline status
        col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "online", start=n)
        n = len(col.messages)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "offline", start=n, timeout=15)
        # persistent session: a command sent while the agent is down waits at the broker for it
        col.publish(topic("cmd"), protocol.command("while-down", "collect_logs", lines=3))
        proc = spawn(cfg, tmp_path)
        res = col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "while-down", start=n, timeout=30)
        assert res[1]["ok"] and len(res[1]["result"]["lines"]) == 3
    finally:
        stop(proc)
        col.close()


def test_broker_restart_outbox_drains_nothing_lost(tmp_path, mosquitto, hub):
    cfg, port = write_config(tmp_path, mosquitto, hub, uplink_batch_size=7)
    # a persistent subscriber: QoS 1 messages published while it reconnects are queued for it
    col = Collector(mosquitto.url, [topic("predictions"), topic("reported"), topic("status")], client_id="hub-test",
                    persistent=True)
    proc = spawn(cfg, tmp_path)
    try:
        deploy(col, hub, 1, make_detector_onnx(tmp_path / "a.onnx").read_bytes())
        col.wait_for(lambda t, p: t.endswith("/reported") and p["state"] == "healthy")
        url = f"http://127.0.0.1:{port}/v1/detect?model=det"
        ids: list[str] = []
        for i in range(5):
            assert requests.post(url, data=sample_jpeg(i), timeout=10).status_code == 200
        mosquitto.stop()
        for i in range(5, 40):  # inference goes on while the broker is down
            assert requests.post(url, data=sample_jpeg(i), timeout=10).status_code == 200
        time.sleep(1.0)
        # agent restart while the broker is still down: the outbox is on disk
        stop(proc)
        proc = spawn(cfg, tmp_path)
        wait_port(port, timeout=20)
        for i in range(40, 45):
            assert requests.post(url, data=sample_jpeg(i), timeout=10).status_code == 200
        restarted_at = time.time()
        mosquitto.start()  # the collector reconnects to its persisted session by itself
        col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "online" and p["ts"] >= restarted_at)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ids = [r["id"] for b in col.on("/predictions") for r in b["records"]]
            if len(set(ids)) >= 45:
                break
            time.sleep(0.2)
        assert len(set(ids)) == 45, f"got {len(set(ids))} distinct records"
        first_seen = {}
        for b in col.on("/predictions"):
            for r in b["records"]:
                first_seen.setdefault(r["id"], r["ts"])
        assert list(first_seen.values()) == sorted(first_seen.values())  # drained in order
    finally:
        stop(proc)
        col.close()


def test_restart_command_reexecutes(tmp_path, mosquitto, hub):
    cfg, port = write_config(tmp_path, mosquitto, hub)
    col = Collector(mosquitto.url, [f"{PREFIX}/devices/dev1/#"])
    proc = spawn(cfg, tmp_path)
    try:
        col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "online")
        n = len(col.messages)
        col.publish(topic("cmd"), protocol.command("r1", "restart"))
        res = col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "r1", start=n)[1]
        assert res["ok"] and res["result"] == {"restarting": True}
        col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "offline", start=n)
        col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "online", start=n, timeout=30)
        assert proc.poll() is None  # same process id, new program image
    finally:
        stop(proc)
        col.close()


def test_serve_any_onnx_without_hub_or_broker(tmp_path):
    import tritonclient.http as httpclient

    model = make_plain_onnx(tmp_path / "adder.onnx")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", str(model), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=20)
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
        x = np.ones((2, 4), np.float32)
        inp = httpclient.InferInput("x", [2, 4], "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        res = client.infer("adder", [inp])  # name defaults to the file's stem
        np.testing.assert_allclose(res.as_numpy("y"), 3 * x)
        r = requests.post(f"http://127.0.0.1:{port}/v1/detect?model=adder", data=sample_jpeg())
        assert r.status_code == 400  # no detector metadata
    finally:
        stop(proc)


@pytest.mark.parametrize("kind", ["onnx", "package"])
def test_serve_detector(tmp_path, kind):
    if kind == "onnx":
        model, extra, name = make_detector_onnx(tmp_path / "tiny.onnx"), ["--name", "cam"], "cam"
    else:  # a package zip: the name is its stem, the version its manifest's
        model, extra, name = make_package_zip(tmp_path / "pkg", tmp_path / "det-v1.zip", version="4"), [], "det-v1"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", str(model), "--port", str(port), *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=20)
        r = requests.post(f"http://127.0.0.1:{port}/v1/detect", files={"image": ("a.jpg", sample_jpeg())})
        assert r.status_code == 200 and r.json()["model"] == name
        models = requests.get(f"http://127.0.0.1:{port}/v1/models").json()["models"]
        assert [m["name"] for m in models] == [name]
        if kind == "package":
            assert models[0]["version"] == "4"
    finally:
        stop(proc)
