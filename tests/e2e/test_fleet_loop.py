"""The whole fleet loop with real things: Mosquitto, the hub served over HTTP, a real agent process.

provision -> publish a package -> deploy from the hub -> the agent serves -> /v1/detect calls ->
prediction records and selected frames arrive at the hub -> the edge-captures dataset grows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub" / "fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fixtures_mqtt
from fixtures_mqtt import mosquitto  # noqa: E402,F401
from fleet_helpers import (  # noqa: E402
    AgentProc,
    Api,
    HubServer,
    make_fleet_app,
    package,
    sample_jpeg,
    wait_until,
    write_agent_config,
)

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def test_provision_deploy_serve_predictions_and_captures(tmp_path, mosquitto):  # noqa: F811
    app, token = make_fleet_app(tmp_path, mosquitto.url, rollout_timeout_s=30)
    server = HubServer(app).start()
    api = Api(server.url, token)
    agent = None
    try:
        dev = api.ok(api.post("/api/v1/devices", json={"id": "cam-1", "name": "Gate camera", "tags": ["gate"],
                                                      "project": "edge"}), 201)
        assert dev["token"].startswith("ymird_")
        assert "token" not in api.ok(api.get("/api/v1/devices/cam-1"))  # shown once, kept as a hash
        pkg = package(tmp_path / "v1")
        with open(pkg, "rb") as f:
            algo = api.ok(api.post("/api/v1/algorithms", files={"file": ("tiny.zip", f)}), 201)
        assert algo["name"] == "tiny" and algo["class_names"] == ["circle", "square", "triangle"]

        cfg, port = write_agent_config(tmp_path / "agent", "cam-1", dev["token"], mosquitto.url, server.url,
                                       hub_public_key=dev["hub_public_key"], mining_enabled=True, mining_control_share=1.0, mining_rate_per_min=600.0,
                                       mining_window=1.0, mining_conf=0.0)
        agent = AgentProc(tmp_path / "agent", cfg, port)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/cam-1"))["online"], 30, what="the device online")

        dep = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "device:cam-1",
                                                          "settings": {"conf": 0.05}}), 201)
        again = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "device:cam-1",
                                                            "settings": {"conf": 0.05}}), 200)
        assert again["id"] == dep["id"]  # idempotent: the same running deployment
        done = wait_until(lambda: (d := api.ok(api.get(f"/api/v1/deployments/{dep['id']}")))["state"] == "completed"
                          and d, 60, what=f"deployment completed; agent log:\n{agent.tail()}")
        assert [r["state"] for r in done["devices"]] == ["healthy"]

        # the agent serves the package the hub published
        info = requests.get(f"{agent.url}/v2/models/tiny", timeout=10).json()
        assert info["name"] == "tiny"
        for seed in range(6):
            r = requests.post(f"{agent.url}/v1/detect", files={"image": ("f.jpg", sample_jpeg(seed))},
                              data={"model": "tiny"}, timeout=30)
            assert r.status_code == 200, r.text

        # every record arrives once; selected frames become assets of the edge-captures dataset
        preds = wait_until(lambda: (p := api.ok(api.get("/api/v1/devices/cam-1/predictions")))["count"] >= 6 and p,
                           30, what="6 prediction records")
        assert preds["count"] == 6 and {r["deployment"] for r in preds["recent"]} == {"tiny"}
        project = api.ok(api.get("/api/v1/projects/edge"))

        def edge_version():
            groups = api.ok(api.get(f"/api/v1/projects/{project['id']}/datasets"))
            edge = [g for g in groups["datasets"] if g["name"] == "edge captures"]
            return edge and edge[0]["versions"] and edge[0]["versions"][-1]["images"] >= 6 and edge[0]["versions"][-1]

        version = wait_until(edge_version, 30, what=f"6 frames in edge captures; agent log:\n{agent.tail()}")
        assets = api.ok(api.get(f"/api/v1/versions/{version['id']}/assets"))
        items = assets["assets"]
        assert items and items[0]["tags"]["device"] == "cam-1" and items[0]["tags"]["algorithm"] == "tiny"
        assert items[0]["tags"]["revision"] == str(done["devices"][0]["revision"])

        # device list: online, revision, active algorithm healthy; metrics arrive
        devices = api.ok(api.get("/api/v1/devices"))["devices"]
        assert devices[0]["algorithms"][0]["state"] == "healthy"
        wait_until(lambda: api.ok(api.get("/api/v1/devices/cam-1"))["metrics"].get("outbox_depth") is not None, 20,
                   what="metrics")
    finally:
        if agent:
            agent.stop()
        server.stop()
        app.extensions["ymir"].close()
