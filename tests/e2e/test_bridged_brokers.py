"""A fleet past one broker: two real Mosquittos bridged (an edge broker forwarding ``ymir/v1/devices/#`` both
ways to the central one the hub uses), and a real agent process on the edge broker only. The hub sees the
device come online, deploys to it through the bridge, and the agent's prediction records come back through it
(docs/scaling.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub" / "fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fixtures_mqtt
from fixtures_mqtt import MOSQUITTO, Mosquitto  # noqa: E402
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


def test_an_agent_behind_a_bridged_edge_broker_is_deployed_and_reports(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not installed (apt-get install -y mosquitto)")
    central = Mosquitto(tmp_path / "central").start()
    edge = Mosquitto(tmp_path / "edge")
    with edge.config.open("a") as f:  # Mosquitto's own bridge: no home-made relay
        f.write(f"connection edge-to-central\naddress 127.0.0.1:{central.port}\n"
                "topic ymir/v1/devices/# both 1\ncleansession false\nrestart_timeout 1\n"
                "bridge_protocol_version mqttv311\ntry_private true\n")
    edge.start()
    app, token = make_fleet_app(tmp_path, central.url, rollout_timeout_s=30)
    server = HubServer(app).start()
    api = Api(server.url, token)
    agent = None
    try:
        wait_until(lambda: "edge-to-central" in central.log() or "bridge" in edge.log().lower(), 10,
                   what="the bridge connected")
        dev = api.ok(api.post("/api/v1/devices", json={"id": "far-1", "project": "edge"}), 201)
        with open(package(tmp_path / "pkg"), "rb") as f:
            algo = api.ok(api.post("/api/v1/algorithms", files={"file": ("tiny.zip", f)}), 201)
        cfg, port = write_agent_config(tmp_path / "agent", "far-1", dev["token"], edge.url, server.url,
                                       mining_enabled=False)
        agent = AgentProc(tmp_path / "agent", cfg, port)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/far-1"))["online"], 30,
                   what=f"far-1 online through the bridge; agent log:\n{agent.tail()}")

        dep = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": algo["id"], "target": "device:far-1"}), 201)
        done = wait_until(lambda: (d := api.ok(api.get(f"/api/v1/deployments/{dep['id']}")))["state"] == "completed"
                          and d, 60, what=f"deployment through the bridge; agent log:\n{agent.tail()}")
        assert [r["state"] for r in done["devices"]] == ["healthy"]
        for seed in range(3):
            r = requests.post(f"{agent.url}/v1/detect", files={"image": ("f.jpg", sample_jpeg(seed))},
                              data={"model": "tiny"}, timeout=30)
            assert r.status_code == 200, r.text
        got = wait_until(lambda: (p := api.ok(api.get("/api/v1/devices/far-1/predictions")))["count"] >= 3 and p,
                         30, what="3 records through the bridge")
        assert got["count"] == 3
    finally:
        if agent:
            agent.stop()
        server.stop()
        app.extensions["ymir"].close()
        edge.stop()
        central.stop()
