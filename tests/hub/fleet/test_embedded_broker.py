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


def _connack(url: str, user: str, password: str) -> tuple:
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = url.split("//")[1].split(":")
    done, out = threading.Event(), []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ymir-agent-{user}", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, u, f, rc, p: (out.append(str(rc)), done.set())
    c.connect(host, int(port))
    c.loop_start()
    done.wait(5)
    return c, (out[0] if out else "no answer")


def test_embedded_mosquitto_with_passwords_and_per_device_acls(tmp_path):
    if MOSQUITTO_BIN is None:
        pytest.skip("mosquitto not installed")
    app, token = make_fleet_app(tmp_path, None, embedded_broker="mosquitto", broker_listen="127.0.0.1:0",
                                broker_auth=True)
    server = HubServer(app).start()
    api = Api(server.url, token)
    clients = []
    try:
        info = api.ok(api.get("/api/v1/fleet"))
        assert info["broker_auth"] and "ymir-hub" not in info["broker"]  # no credentials shown
        wait_until(lambda: api.ok(api.get("/api/v1/fleet"))["connected"], 10, what="hub connected with its password")
        d1 = api.ok(api.post("/api/v1/devices", json={"id": "a1"}), 201)
        api.ok(api.post("/api/v1/devices", json={"id": "a2"}), 201)
        time.sleep(1.5)  # the password file follows the devices within a second

        c, rc = _connack(info["broker"], "a1", "wrong-token")
        clients.append(c)
        assert rc == "Not authorized"
        c, rc = _connack(info["broker"], "a1", d1["token"])
        clients.append(c)
        assert rc == "Success"
        recs = [{"id": f"r{i}", "detections": []} for i in range(3)]
        # a1 may publish as itself, not as a2 (the ACL drops it silently)
        c.publish(protocol.topic("ymir/v1", "a2", "predictions"),
                  protocol.encode(protocol.prediction_batch("a2", 1, recs)), 1).wait_for_publish(5)
        c.publish(protocol.topic("ymir/v1", "a1", "predictions"),
                  protocol.encode(protocol.prediction_batch("a1", 1, recs)), 1).wait_for_publish(5)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/a1/predictions"))["count"] == 3, 10, what="a1's records")
        assert api.ok(api.get("/api/v1/devices/a2/predictions"))["count"] == 0

        new = api.ok(api.post("/api/v1/devices/a1/token"))  # the old token stops working on the broker too
        time.sleep(1.5)
        c, rc = _connack(info["broker"], "a1", d1["token"])
        clients.append(c)
        assert rc == "Not authorized"
        c, rc = _connack(info["broker"], "a1", new["token"])
        clients.append(c)
        assert rc == "Success"
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        server.stop()
        app.extensions["ymir"].close()


def test_agent_speaks_mqtt_311_to_the_amqtt_fallback(tmp_path):
    """amqtt knows only MQTT 3.1.1: an agent set to mqtt_version=3.1.1 connects and gets its desired state."""
    pytest.importorskip("amqtt")
    from agent.config import load_settings
    from agent.mqtt import MqttSession

    app, token = make_fleet_app(tmp_path, None, embedded_broker="amqtt", broker_listen="127.0.0.1:0")
    server = HubServer(app).start()
    api = Api(server.url, token)
    session = None
    try:
        info = api.ok(api.get("/api/v1/fleet"))
        wait_until(lambda: api.ok(api.get("/api/v1/fleet"))["connected"], 10, what="hub connected")
        api.ok(api.post("/api/v1/devices", json={"id": "e2"}), 201)
        settings = load_settings(env={}, overrides={"device_id": "e2", "mqtt_url": info["broker"],
                                                    "mqtt_version": "3.1.1", "store_dir": str(tmp_path / "s")})
        got = []
        session = MqttSession(settings, on_message=lambda kind, payload: got.append((kind, payload)))
        session.start()
        assert session.connected.wait(10), "the agent connected over MQTT 3.1.1"
        wait_until(lambda: any(k == "desired" for k, _ in got), 10, what="desired state over 3.1.1")
        assert session.publish("status", protocol.status("e2", "online"), wait=5)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/e2"))["online"], 10, what="device online")
    finally:
        if session:
            session.stop()
        server.stop()
        app.extensions["ymir"].close()
