"""Without YMIR_MQTT_URL the hub starts its own broker: Mosquitto when installed, else amqtt
(MQTT 3.1.1 only, a demo broker); devices' messages arrive and desired states go out either way."""

from __future__ import annotations

import time

import pytest
from fleet_helpers import MOSQUITTO_BIN, Api, HubServer, make_fleet_app, wait_until

from agent import protocol


def _client(url: str, mqtt5: bool):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = url.split("//")[1].split(":")
    got = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ymir-agent-e1",
                    protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311)
    c.on_message = lambda cl, u, m: got.append(bytes(m.payload))
    c.connect(host, int(port))
    c.loop_start()
    c.subscribe(protocol.topic("ymir/v1", "e1", "desired"), 1)
    return c, got


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_embedded_broker_carries_uplinks_and_desired_states(tmp_path, kind):
    if kind == "mosquitto" and MOSQUITTO_BIN is None:
        pytest.skip("mosquitto not installed")
    if kind == "amqtt":
        pytest.importorskip("amqtt")
    app, token = make_fleet_app(tmp_path, None, embedded_broker=kind, broker_listen="127.0.0.1:0")
    server = HubServer(app).start()
    api = Api(server.url, token)
    client = None
    try:
        info = api.ok(api.get("/api/v1/fleet"))
        assert info["embedded"] == kind and info["broker"].startswith("mqtt://127.0.0.1:")
        wait_until(lambda: api.ok(api.get("/api/v1/fleet"))["connected"], 10, what="hub connected")
        api.ok(api.post("/api/v1/devices", json={"id": "e1"}), 201)
        client, got = _client(info["broker"], mqtt5=(kind == "mosquitto"))
        time.sleep(0.3)
        client.publish(protocol.topic("ymir/v1", "e1", "status"), protocol.encode(protocol.status("e1", "online")),
                       1, True).wait_for_publish(5)
        recs = [{"id": f"r{i}", "deployment": "x", "detections": []} for i in range(7)]
        client.publish(protocol.topic("ymir/v1", "e1", "predictions"),
                       protocol.encode(protocol.prediction_batch("e1", 1, recs)), 1).wait_for_publish(5)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/e1/predictions"))["count"] == 7, 10, what="7 records")
        assert api.ok(api.get("/api/v1/devices/e1"))["online"]
        # the hub's (empty) desired state for the new device reaches it
        wait_until(lambda: any(protocol.Desired.parse(g).deployments == () for g in got if g), 10,
                   what="desired state")
    finally:
        if client:
            client.disconnect()
            client.loop_stop()
        server.stop()
        app.extensions["ymir"].close()
