"""Fleet API against a real Mosquitto, with test-side MQTT clients standing in for devices:
device tokens, artifacts with Range, garbage payloads, offline convergence, timeouts, commands,
algorithm publishing, review and "try it out"."""

from __future__ import annotations

import io
import json
import time

import pytest
from fleet_helpers import (
    PREFIX,
    Collector,
    make_detector_onnx,
    make_fleet_app,
    package,
    sample_jpeg,
    wait_until,
)

from agent import protocol

pytestmark = [pytest.mark.mqtt]


def _topic(device: str, kind: str) -> str:
    return protocol.topic(PREFIX, device, kind)


def _publish_pkg(api, tmp_path, **kw) -> dict:
    with open(package(tmp_path / f"pkg{time.monotonic_ns()}", **kw), "rb") as f:
        return api.ok(api.post("/api/v1/algorithms", files={"file": ("tiny.zip", f)}), 201)


def test_device_token_shown_once_and_guards_artifacts_and_captures(fleet_hub, tmp_path):
    app, server, api = fleet_hub
    dev = api.ok(api.post("/api/v1/devices", json={"id": "d1", "tags": ["a"], "project": "edge"}), 201)
    other = api.ok(api.post("/api/v1/devices", json={"id": "d2"}), 201)
    assert api.post("/api/v1/devices", json={"id": "d1"}).status_code == 409
    assert api.post("/api/v1/devices", json={"id": "bad id/x"}).status_code == 400
    row = app.extensions["ymir"].database.db.execute("SELECT token_hash FROM devices WHERE id = 'd1'").fetchone()
    assert row[0] != dev["token"] and dev["token"] not in json.dumps(api.ok(api.get("/api/v1/devices")))
    algo = _publish_pkg(api, tmp_path)
    url = f"{server.url}/api/v1/artifacts/{algo['sha256']}"
    import requests

    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer ymird_nope"}, timeout=10).json()["code"] == "unauthorized"
    full = requests.get(url, headers={"Authorization": f"Bearer {dev['token']}"}, timeout=10)
    assert full.status_code == 200 and len(full.content) == algo["size"]
    # the stored package is signed with the key the device got at provisioning
    from detkit.signing import verify_zip

    assert api.ok(api.get("/api/v1/fleet/public-key"))["hub_public_key"] == dev["hub_public_key"]
    (tmp_path / "got.zip").write_bytes(full.content)
    verify_zip(tmp_path / "got.zip", dev["hub_public_key"])
    part = requests.get(url, headers={"Authorization": f"Bearer {dev['token']}", "Range": "bytes=100-"}, timeout=10)
    assert part.status_code == 206 and part.content == full.content[100:]
    # a device may upload captures only under its own id
    meta = json.dumps({"record": {"id": "r1", "detections": []}, "reason": "control", "score": 0.1})
    cap = f"{server.url}/api/v1/devices/d1/captures"
    files = {"frame": ("f.jpg", sample_jpeg(1))}
    assert requests.post(cap, files=files, data={"meta": meta}, timeout=10).status_code == 401
    r = requests.post(cap, files=files, data={"meta": meta}, headers={"Authorization": f"Bearer {other['token']}"},
                      timeout=10)
    assert r.status_code == 403
    r = requests.post(cap, files={"frame": ("f.jpg", b"not an image")}, data={"meta": meta},
                      headers={"Authorization": f"Bearer {dev['token']}"}, timeout=10)
    assert r.status_code == 400 and "frame" in r.json()["error"]
    r = requests.post(cap, files=files, data={"meta": meta}, headers={"Authorization": f"Bearer {dev['token']}"},
                      timeout=10)
    assert r.status_code == 201 and r.json()["boxes"] == 0
    r = requests.post(cap, files=files, data={"meta": meta}, headers={"Authorization": f"Bearer {dev['token']}"},
                      timeout=10)
    assert r.status_code == 200 and r.json()["duplicate"]  # at-least-once delivery: no second copy
    # a device token is no user token
    assert requests.get(f"{server.url}/api/v1/devices", headers={"Authorization": f"Bearer {dev['token']}"},
                        timeout=10).status_code == 401
    # rotating the token revokes the old one
    new = api.ok(api.post("/api/v1/devices/d1/token"))
    assert requests.get(url, headers={"Authorization": f"Bearer {dev['token']}"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {new['token']}"}, timeout=10).status_code == 200


def test_garbage_payloads_are_logged_and_counted_never_crash(fleet_hub, mosquitto):
    app, server, api = fleet_hub
    api.ok(api.post("/api/v1/devices", json={"id": "g1"}), 201)
    col = Collector(mosquitto.url, ["unrelated/topic"])
    bad = [("status", b"\xff\xfe"), ("status", b"[]"), ("reported", json.dumps({"schema": 1}).encode()),
           ("reported", json.dumps({"schema": 2, "deployment": "x", "revision": 1, "state": "healthy"}).encode()),
           ("metrics", b"{not json"), ("predictions", json.dumps({"schema": 1, "records": "x"}).encode()),
           ("predictions", json.dumps({"schema": 1, "batch": 1, "records": [{"id": "ok1"}, {"no": "id"}]}).encode()),
           ("cmd/result", json.dumps({"schema": 1, "id": True}).encode())]
    for kind, raw in bad:
        col.publish(_topic("g1", kind), raw)
    col.publish(_topic("stranger", "predictions"), protocol.prediction_batch("stranger", 1, [{"id": "s1"}]))
    good = [{"id": f"rec{i}", "ts": time.time(), "deployment": "tiny", "revision": 1, "detections": []}
            for i in range(120)]
    col.publish(_topic("g1", "predictions"), protocol.prediction_batch("g1", 1, good))
    col.publish(_topic("g1", "predictions"), protocol.prediction_batch("g1", 1, good[:10]))  # redelivery
    fleet = api.ok(api.get("/api/v1/fleet"))
    info = wait_until(lambda: (f := api.ok(api.get("/api/v1/fleet")))["ingest"]["records"] >= 120 and f, 20,
                      what="the good batch")
    assert info["ingest"]["garbage"] == len(bad), info
    assert info["ingest"]["unknown_device"] >= 1
    assert info["ingest"]["duplicate_records"] == 10 and info["records"] == 120
    assert fleet["connected"] and api.get("/api/v1/health").status_code == 200
    col.close()


def test_offline_device_converges_when_it_returns_and_stuck_device_times_out(tmp_path, mosquitto):
    from fleet_helpers import Api, HubServer

    app, token = make_fleet_app(tmp_path, mosquitto.url, rollout_timeout_s=1)
    server = HubServer(app).start()
    api = Api(server.url, token)
    try:
        for d in ("off1", "stuck1"):
            api.ok(api.post("/api/v1/devices", json={"id": d, "tags": ["t"]}), 201)
        algo = _publish_pkg(api, tmp_path)
        dep = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "device:off1"}), 201)
        time.sleep(1.5)  # the device is offline: nothing times out, the row waits as "sent"
        row = api.ok(api.get(f"/api/v1/deployments/{dep['id']}"))["devices"][0]
        assert row["state"] == "sent"
        # the device comes back: the retained desired state is there for it
        dev = Collector(mosquitto.url, [_topic("off1", "desired")], client_id="ymir-agent-off1")
        _, doc = dev.wait_for(lambda t, p: isinstance(p, dict) and p["deployments"], 10)
        desired = protocol.Desired.parse(json.dumps(doc))
        entry = desired.deployments[0]
        assert entry.sha256 == algo["sha256"] and entry.url == f"/api/v1/artifacts/{algo['sha256']}"
        dev.publish(_topic("off1", "status"), protocol.status("off1", "online"), retain=True)
        dev.publish(_topic("off1", "reported"), protocol.reported(1, entry.name, entry.revision, "healthy"))
        wait_until(lambda: api.ok(api.get(f"/api/v1/deployments/{dep['id']}"))["state"] == "completed", 20,
                   what="off1 converged")
        assert api.ok(api.get("/api/v1/devices/off1"))["online"]
        dev.publish(_topic("off1", "status"), protocol.status("off1", "offline"), retain=True)
        wait_until(lambda: not api.ok(api.get("/api/v1/devices/off1"))["online"], 10, what="off1 offline")
        dev.close()

        # a device that stays "downloading" past the timeout is timed out and the deployment aborts
        dep2 = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "device:stuck1"}),
                      201)
        stuck = Collector(mosquitto.url, [_topic("stuck1", "desired")])
        _, doc = stuck.wait_for(lambda t, p: isinstance(p, dict) and p["deployments"], 10)
        rev = doc["deployments"][0]["revision"]
        stuck.publish(_topic("stuck1", "status"), protocol.status("stuck1", "online"), retain=True)
        stuck.publish(_topic("stuck1", "reported"), protocol.reported(1, "tiny", rev, "downloading"))
        final = wait_until(lambda: (d := api.ok(api.get(f"/api/v1/deployments/{dep2['id']}")))["state"] == "aborted"
                           and d, 20, what="stuck1 timed out")
        assert "timed_out" in final["message"] and final["devices"][0]["state"] == "rolled_back"
        # rollback of a device that had nothing before clears its slot: the desired state is empty again
        wait_until(lambda: any(isinstance(p, dict) and p["deployments"] == [] for p in stuck.on("/desired")), 10,
                   what="empty desired state")
        stuck.close()
    finally:
        server.stop()
        app.extensions["ymir"].close()


def test_algorithm_centre_commands_reach_the_device(fleet_hub, mosquitto, tmp_path):
    app, server, api = fleet_hub
    api.ok(api.post("/api/v1/devices", json={"id": "c1"}), 201)
    algo = _publish_pkg(api, tmp_path)
    dev = Collector(mosquitto.url, [_topic("c1", "cmd"), _topic("c1", "desired")])
    api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "all"}), 201)
    dev.wait_for(lambda t, p: t.endswith("/desired") and isinstance(p, dict) and p["deployments"], 10)
    cmd = api.ok(api.post("/api/v1/devices/c1/commands", json={"action": "disable", "deployment": "tiny"}), 202)
    _, payload = dev.wait_for(lambda t, p: t.endswith("/cmd"), 10)
    assert payload["action"] == "disable" and payload["id"] == cmd["id"]
    dev.publish(_topic("c1", "cmd/result"), protocol.command_result(cmd["id"], True, {"enabled": False}))
    done = wait_until(lambda: (c := api.ok(api.get(f"/api/v1/commands/{cmd['id']}")))["ok"] is not None and c, 10,
                      what="command result")
    assert done["ok"] and done["result"] == {"enabled": False}
    assert api.post("/api/v1/devices/c1/commands", json={"action": "explode"}).status_code == 400
    # removing the algorithm from the device publishes a desired state without it
    api.ok(api.delete("/api/v1/devices/c1/algorithms/tiny"))
    dev.wait_for(lambda t, p: t.endswith("/desired") and isinstance(p, dict) and p["deployments"] == [], 10)
    # removing the device clears its retained topics
    api.ok(api.delete("/api/v1/devices/c1"))
    dev.wait_for(lambda t, p: t.endswith("/desired") and p == b"", 10)
    dev.close()


def test_publish_from_a_model_stage_review_and_try_it_out(fleet_hub, tmp_path):
    app, server, api = fleet_hub
    from hub.models_io import import_model

    st = app.extensions["ymir"]
    onnx = make_detector_onnx(tmp_path / "det.onnx")
    model = import_model(st.database, st.settings.home, onnx, project_id=1, name="shapes")
    algo = api.ok(api.post("/api/v1/algorithms", json={"model_id": model["id"]}), 201)
    assert algo["name"] == "shapes" and algo["model_id"] == model["id"] and algo["visibility"] == "private"
    assert algo["manifest"]["source_sha256"] and algo["project_id"] == 1
    assert api.ok(api.get("/api/v1/algorithms?scope=public"))["algorithms"] == []
    pending = api.ok(api.post(f"/api/v1/algorithms/{algo['id']}/publish"))
    assert pending["visibility"] == "pending"
    assert api.post(f"/api/v1/algorithms/{algo['id']}/publish").status_code == 409
    rejected = api.ok(api.post(f"/api/v1/algorithms/{algo['id']}/review", json={"approve": False, "note": "blurry"}))
    assert rejected["visibility"] == "rejected" and rejected["review_note"] == "blurry"
    api.ok(api.post(f"/api/v1/algorithms/{algo['id']}/publish"))
    api.ok(api.post(f"/api/v1/algorithms/{algo['id']}/review", json={"approve": True, "note": "ok"}))
    assert [a["id"] for a in api.ok(api.get("/api/v1/algorithms?scope=public"))["algorithms"]] == [algo["id"]]

    from PIL import Image

    img = Image.new("RGB", (64, 48), (250, 250, 250))
    img.paste((10, 10, 10), (8, 8, 30, 30))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = api.ok(api.post(f"/api/v1/algorithms/{algo['id']}/try", files={"image": ("x.png", buf.getvalue())},
                          data={"conf": "0.01"}))
    assert out["width"] == 64 and out["detections"]
    png = api.post(f"/api/v1/algorithms/{algo['id']}/try?format=png", files={"image": ("x.png", buf.getvalue())})
    assert png.headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(png.content)).size == (64, 48)
    for url in ("ftp://example.com/x.jpg", "http://127.0.0.1:1/x.jpg", "file:///etc/passwd"):
        r = api.post(f"/api/v1/algorithms/{algo['id']}/try", json={"url": url})
        assert r.status_code == 400, (url, r.text)
    r = api.post(f"/api/v1/algorithms/{algo['id']}/try", files={"image": ("x.jpg", b"GIF89a....")})
    assert r.status_code == 400


def test_fleet_settings_are_validated():
    from detkit.errors import BadInput
    from hub.config import load_settings

    for env in ({"YMIR_MQTT_URL": "http://x"}, {"YMIR_MQTT_PREFIX": "a/#"}, {"YMIR_EMBEDDED_BROKER": "rabbit"},
                {"YMIR_BROKER_LISTEN": "nohost"}, {"YMIR_PUBLIC_URL": "ftp://x"}):
        with pytest.raises(BadInput):
            load_settings("/tmp/x", env=env)
    s = load_settings("/tmp/x", env={"YMIR_MQTT_URL": "mqtt://b:1883", "YMIR_PUBLIC_URL": "http://hub:8080/"})
    assert s.fleet_enabled and s.mqtt_url == "mqtt://b:1883" and s.public_url == "http://hub:8080"
    assert not load_settings("/tmp/x", env={}, testing=True).fleet_enabled


def test_batches_wait_for_the_success_threshold(fleet_hub, mosquitto, tmp_path):
    app, server, api = fleet_hub
    for d in ("b1", "b2"):
        api.ok(api.post("/api/v1/devices", json={"id": d, "tags": ["line"]}), 201)
    algo = _publish_pkg(api, tmp_path)
    devs = {d: Collector(mosquitto.url, [_topic(d, "desired")]) for d in ("b1", "b2")}
    dep = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "tag:line",
                                                      "batch_percent": 50}), 201)
    assert dep["batches"] == 2
    _, doc = devs["b1"].wait_for(lambda t, p: isinstance(p, dict) and p["deployments"], 10)
    time.sleep(1.5)  # b2 is in the second batch: nothing for it while b1 is not healthy
    assert not any(isinstance(p, dict) and p["deployments"] for p in devs["b2"].on("/desired"))
    rows = {r["device_id"]: r["state"] for r in api.ok(api.get(f"/api/v1/deployments/{dep['id']}"))["devices"]}
    assert rows == {"b1": "sent", "b2": "pending"}
    devs["b1"].publish(_topic("b1", "reported"), protocol.reported(1, "tiny", doc["deployments"][0]["revision"],
                                                                   "healthy"))
    _, doc2 = devs["b2"].wait_for(lambda t, p: isinstance(p, dict) and p["deployments"], 10)
    devs["b2"].publish(_topic("b2", "reported"), protocol.reported(1, "tiny", doc2["deployments"][0]["revision"],
                                                                   "healthy"))
    wait_until(lambda: api.ok(api.get(f"/api/v1/deployments/{dep['id']}"))["state"] == "completed", 10,
               what="completed")
    for c in devs.values():
        c.close()


def test_a_deployment_written_without_a_fleet_is_sent_when_a_hub_server_starts(tmp_path, mosquitto):
    """The CLI (no broker connection) writes the deployment; the next hub server with a fleet sends it."""
    from fleet_helpers import Api, HubServer

    from hub import create_app
    from hub.config import load_settings
    from hub.fleet import algorithms, deployments, devices
    from hub.store.workspace import Workspace

    app, token = make_fleet_app(tmp_path, mosquitto.url)
    app.extensions["ymir"].close()
    ws = Workspace.open(load_settings(tmp_path / "ws", env={}, testing=True))  # fleet off, like the CLI
    devices.provision(ws.database, "late1")
    algo = algorithms.publish_package(ws.database, ws.settings, package(tmp_path / "p"))
    dep, _ = deployments.deploy(ws.database, algorithm_id=algo["id"], target="device:late1")
    ws.close()
    col = Collector(mosquitto.url, [_topic("late1", "desired")])
    app2 = create_app(load_settings(tmp_path / "ws", env={}, testing=True, secret_key="test-secret",
                                    fleet_enabled=True, mqtt_url=mosquitto.url, run_jobs=False))
    server = HubServer(app2).start()
    api = Api(server.url, token)
    try:
        col.wait_for(lambda t, p: isinstance(p, dict) and p["deployments"] and
                     p["deployments"][0]["sha256"] == algo["sha256"], 15)
        assert api.ok(api.get(f"/api/v1/deployments/{dep['id']}"))["devices"][0]["state"] == "sent"
    finally:
        col.close()
        server.stop()
        app2.extensions["ymir"].close()
