"""The agent against a real Mosquitto: desired state -> deploy -> serve; failures, commands, garbage."""

from __future__ import annotations

import time

import pytest
import requests
from agent_helpers import make_detector_onnx, make_package_zip, sample_jpeg
from fixtures_mqtt import Collector

from agent import protocol
from agent.config import load_settings
from agent.daemon import Agent

pytestmark = pytest.mark.mqtt
PREFIX = "ymir/v1"


def topic(kind: str, device: str = "dev1") -> str:
    return protocol.topic(PREFIX, device, kind)


@pytest.fixture
def running(tmp_path, mosquitto, hub):
    settings = load_settings(env={}, overrides={
        "device_id": "dev1", "mqtt_url": mosquitto.url, "hub_url": hub.url, "device_token": hub.token,
        "store_dir": str(tmp_path / "store"), "http_bind": "127.0.0.1:0", "metrics_interval": 0.5,
        "desired_wait": 0.5, "uplink_interval": 0.2, "mining_window": 0.5, "mining_control_share": 0.0,
    })
    col = Collector(mosquitto.url, [f"{PREFIX}/devices/dev1/#"])
    agent = Agent(settings).start()
    yield agent, col, hub
    agent.stop()
    col.close()


def reported(col, state: str, revision: int, start: int = 0):
    return col.wait_for(lambda t, p: t.endswith("/reported") and isinstance(p, dict) and p["state"] == state
                        and p["revision"] == revision, start=start)[1]


def desired_doc(hub, revision: int, blobs: list[tuple[str, bytes, int]]) -> dict:
    return protocol.desired(revision, [{"name": n, "revision": r, "backend": "onnxruntime",
                                        "settings": {"conf": 0.3}, **hub.add(b)} for n, b, r in blobs])


def test_deploy_fail_rollback_disable_over_mqtt(running, tmp_path):
    agent, col, hub = running
    status = col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "online")[1]
    assert status["backends"]["onnxruntime"]["ok"] is True and "hardware" in status
    v1 = make_package_zip(tmp_path / "p1", tmp_path / "p1.zip").read_bytes()
    col.publish(topic("desired"), desired_doc(hub, 1, [("det", v1, 1)]), retain=True)
    healthy = reported(col, "healthy", 1)
    states = [p["state"] for p in col.on("/reported")]
    assert states[:4] == ["downloading", "verifying", "loading", "healthy"]
    seqs = [p["seq"] for p in col.on("/reported")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert healthy["sha256"] and healthy["device_id"] == "dev1"
    url = agent.http.url
    r = requests.post(f"{url}/v1/detect?model=det", data=sample_jpeg())
    assert r.status_code == 200 and r.json()["version"] == "1"

    # a broken model: previous keeps serving, failed(reason) reported
    broken = make_package_zip(tmp_path / "p2", tmp_path / "p2.zip", version="2", nan=True).read_bytes()
    col.publish(topic("desired"), desired_doc(hub, 2, [("det", broken, 2)]), retain=True)
    failed = reported(col, "failed", 2)
    assert "non-finite" in failed["reason"]
    assert requests.post(f"{url}/v1/detect?model=det", data=sample_jpeg()).json()["version"] == "1"

    # a good revision 3, then roll back to 1 by command
    v3 = make_package_zip(tmp_path / "p3", tmp_path / "p3.zip", version="3", scale=2.0).read_bytes()
    col.publish(topic("desired"), desired_doc(hub, 3, [("det", v3, 3)]), retain=True)
    reported(col, "healthy", 3)
    assert requests.get(f"{url}/v2/models/det").json()["versions"] == ["3"]
    col.publish(topic("cmd"), protocol.command("c1", "rollback", "det"))
    res = col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "c1")[1]
    assert res["ok"] and res["result"]["revision"] == 1
    reported(col, "rolled_back", 1)
    assert requests.get(f"{url}/v2/models/det").json()["versions"] == ["1"]

    # disable -> 503; enable -> served again; unknown deployment -> error result
    col.publish(topic("cmd"), protocol.command("c2", "disable", "det"))
    col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "c2" and p["ok"])
    assert requests.post(f"{url}/v1/detect?model=det", data=sample_jpeg()).status_code == 503
    col.publish(topic("cmd"), protocol.command("c3", "enable", "det"))
    col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "c3" and p["ok"])
    assert requests.post(f"{url}/v1/detect?model=det", data=sample_jpeg()).status_code == 200
    col.publish(topic("cmd"), protocol.command("c4", "rollback", "nope"))
    res = col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "c4")[1]
    assert not res["ok"] and "nope" in res["error"]

    # collect_logs answers with lines; metrics flow with latency percentiles
    col.publish(topic("cmd"), protocol.command("c5", "collect_logs", lines=5))
    res = col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "c5")[1]
    assert res["ok"] and "lines" in res["result"]
    m = col.wait_for(lambda t, p: t.endswith("/metrics") and p.get("total", {}).get("inferences", 0) >= 3)[1]
    assert {"latency_ms", "outbox", "cpu_percent", "memory_mb", "errors"} <= set(m)
    # predictions of those detect calls arrive as QoS 1 batches
    batch = col.wait_for(lambda t, p: t.endswith("/predictions"))[1]
    assert batch["records"][0]["deployment"] == "det" and "entropy" in batch["records"][0]["scores"]
    # edge mining: the window's most uncertain frames were uploaded to the hub with their predictions
    deadline = time.monotonic() + 10
    while not hub.captures and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hub.captures and hub.captures[0]["path"] == "/api/v1/devices/dev1/captures"
    assert b'"score_name": "entropy"' in hub.captures[0]["body"]


def test_garbage_duplicates_and_older_revisions_are_ignored(running, tmp_path):
    agent, col, hub = running
    col.wait_for(lambda t, p: t.endswith("/status") and p.get("state") == "online")
    garbage = [b"\xff\x00\x13", b"not json", b"[]", b'{"schema": 99}', b'{"schema": 1, "revision": "x"}',
               b'{"schema":1,"revision":5,"deployments":[{"name":"../etc","revision":1}]}',
               b'{"schema":1,"revision":5,"deployments":[{"name":"a","revision":1,"sha256":"zz","url":"x","size":1}]}']
    for g in garbage:
        col.publish(topic("desired"), g)
        col.publish(topic("cmd"), g)
    col.publish(topic("cmd"), b'{"schema": 1, "id": "bad1", "action": "format_disk"}')
    res = col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "bad1")[1]
    assert not res["ok"] and "format_disk" in res["error"]
    col.publish(f"{PREFIX}/devices/dev1/other", b"junk")  # not even a known topic
    # still alive: a valid desired state deploys
    model = make_detector_onnx(tmp_path / "m.onnx").read_bytes()
    doc = desired_doc(hub, 7, [("det", model, 7)])
    col.publish(topic("desired"), doc, retain=True)
    reported(col, "healthy", 7)
    n = len(col.on("/reported"))
    col.publish(topic("desired"), doc, retain=True)  # duplicate
    older = desired_doc(hub, 6, [("det", make_detector_onnx(tmp_path / "o.onnx", scale=3.0).read_bytes(), 6)])
    col.publish(topic("desired"), older, retain=True)  # older document revision
    col.publish(topic("cmd"), protocol.command("ping", "collect_logs"))
    col.wait_for(lambda t, p: t.endswith("/cmd/result") and p["id"] == "ping")
    assert len(col.on("/reported")) == n  # nothing re-applied
    assert agent.registry.get("det").revision == 7
    # a newer document disables the same deployment revision: served models answer 503
    off = dict(doc, revision=8)
    off["deployments"] = [dict(doc["deployments"][0], enabled=False)]
    col.publish(topic("desired"), off, retain=True)
    reported(col, "disabled", 7)
    assert requests.post(f"{agent.http.url}/v1/detect?model=det", data=sample_jpeg()).status_code == 503
    assert requests.get(f"{agent.http.url}/v2/health/ready").status_code == 200
