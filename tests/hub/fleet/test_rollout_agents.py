"""Staged rollout with three real agents: one device fails the new package, the deployment aborts
and the devices already moved go back to what they ran before; a whole-deployment rollback."""

from __future__ import annotations

import pytest
import requests
from fleet_helpers import AgentProc, package, wait_until, write_agent_config

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def _served_sha(agent: AgentProc) -> str | None:
    try:
        info = requests.get(f"{agent.url}/v1/models", timeout=5).json()
    except (requests.RequestException, ValueError):
        return None
    models = info.get("models", info) if isinstance(info, dict) else info
    for m in models:
        if m.get("name") == "tiny":
            return m.get("sha256")
    return None


def _publish(api, path) -> dict:
    with open(path, "rb") as f:
        return api.ok(api.post("/api/v1/algorithms", files={"file": ("tiny.zip", f)}), 201)


def test_failure_in_a_later_batch_aborts_and_rolls_back_the_moved_devices(tmp_path, fleet_hub, mosquitto):
    app, server, api = fleet_hub
    agents = []
    try:
        for dev_id in ("dev-a", "dev-b", "dev-c"):
            d = api.ok(api.post("/api/v1/devices", json={"id": dev_id, "tags": ["line1"], "project": "edge"}), 201)
            # dev-c refuses artifacts over 60 kB: the padded v2 package fails there, v1 passes everywhere
            extra = {"download_max_bytes": 60_000} if dev_id == "dev-c" else {}
            cfg, port = write_agent_config(tmp_path / dev_id, dev_id, d["token"], mosquitto.url, server.url, **extra)
            agents.append(AgentProc(tmp_path / dev_id, cfg, port))
        v1 = _publish(api, package(tmp_path / "v1"))
        v2 = _publish(api, package(tmp_path / "v2", version="2", pad_bytes=120_000, scale=2.0))
        assert v2["version"] == 2 and v2["size"] > 60_000 > v1["size"]

        d1 = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": v1["id"], "target": "tag:line1"}), 201)
        wait_until(lambda: api.ok(api.get(f"/api/v1/deployments/{d1['id']}"))["state"] == "completed", 90,
                   what="v1 on all devices: " + " | ".join(a.tail()[-500:] for a in agents))
        assert all(_served_sha(a) == v1["sha256"] for a in agents)

        d2 = api.ok(api.post("/api/v1/deployments", json={
            "algorithm_id": v2["id"], "target": "tag:line1", "batch_percent": 34, "success_threshold": 1.0,
            "max_failures": 1}), 201)
        assert d2["batches"] == 3
        final = wait_until(lambda: (d := api.ok(api.get(f"/api/v1/deployments/{d2['id']}")))["state"]
                           in ("aborted", "rolled_back", "completed") and d, 120, what="v2 rollout to finish")
        assert final["state"] == "aborted", final
        states = {r["device_id"]: r["state"] for r in final["devices"]}
        assert states == {"dev-a": "rolled_back", "dev-b": "rolled_back", "dev-c": "rolled_back"}, final["devices"]
        assert "dev-c" in final["message"]
        # the moved devices had served v2 and serve v1 again; dev-c never stopped serving v1
        wait_until(lambda: all(_served_sha(a) == v1["sha256"] for a in agents), 60,
                   what="every device back on v1")
        for dev in ("dev-a", "dev-b"):
            hist = api.ok(api.get(f"/api/v1/devices/{dev}"))["history"]
            assert [h["state"] for h in hist if h["deployment_id"] == d2["id"]] == ["rolled_back"]

        # rolling back the (completed) v1 deployment takes the algorithm off every device; twice is a no-op
        rb = api.ok(api.post(f"/api/v1/deployments/{d1['id']}/rollback"))
        assert rb["state"] in ("rolling_back", "rolled_back")
        wait_until(lambda: api.ok(api.get(f"/api/v1/deployments/{d1['id']}"))["state"] == "rolled_back", 30,
                   what="v1 rolled back")
        assert api.ok(api.post(f"/api/v1/deployments/{d1['id']}/rollback"))["state"] == "rolled_back"
    finally:
        for a in agents:
            a.stop()
