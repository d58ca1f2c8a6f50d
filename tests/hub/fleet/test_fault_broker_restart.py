"""Faults: the broker restarted 10 times while devices stream prediction records; afterwards the hub
holds every record exactly once.

The hub runs its embedded Mosquitto with passwords and per-device ACLs (``YMIR_BROKER_AUTH=1``, the
production setup), restarted by SIGTERM and a fresh start on the same port and persistence folder.
Each device is the agent's own uplink code in this process: :class:`agent.mqtt.MqttSession` (MQTT 5,
persistent session, the device's credentials), :class:`agent.uplink.Outbox` (SQLite) and
:class:`agent.uplink.Uplink` publishing with the daemon's ``publish(kind, payload, wait=5.0)``; a
producer thread puts :func:`agent.mining.prediction_record` records at a steady rate all along.

What must hold together: the agent keeps an item until the broker's PUBACK (no loss on the way in),
the broker keeps the hub's persistent session and its queued messages over a restart (no loss while
the hub is not yet back), and the hub drops re-deliveries by record id (no duplicate).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fleet_helpers import MOSQUITTO_BIN, Api, HubServer, make_fleet_app, wait_until

from agent import protocol

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

DEVICES, RESTARTS, EVERY_S = 3, 10, 0.01  # one record per device every 10 ms: ~100 records/s each
MODEL = SimpleNamespace(name="tiny", revision=1, sha256="0" * 64)


class _Device:
    """One device's uplink path, as the agent daemon wires it, plus a producer of records."""

    def __init__(self, device_id: str, token: str, url: str, folder: Path):
        from agent.config import load_settings
        from agent.mqtt import MqttSession
        from agent.uplink import Outbox, Uplink

        settings = load_settings(env={}, overrides={
            "device_id": device_id, "mqtt_url": url, "mqtt_username": device_id, "mqtt_password": token,
            "store_dir": str(folder), "mqtt_keepalive": 2, "mqtt_reconnect_max": 1.0})
        self.id = device_id
        self.session = MqttSession(settings, on_message=lambda kind, payload: None)
        self.outbox = Outbox(folder / "outbox.sqlite3")
        self.uplink = Uplink(self.outbox, device_id, lambda kind, payload: self.session.publish(kind, payload, wait=5.0))
        self.sent: list[str] = []
        self.producing, self.running = threading.Event(), threading.Event()
        self._producer = threading.Thread(target=self._produce, daemon=True)
        self._drainer = threading.Thread(target=self._drain, daemon=True)

    def start(self) -> _Device:
        self.session.start()
        self.producing.set()
        self.running.set()
        self._producer.start()
        self._drainer.start()
        return self

    def _produce(self) -> None:
        from agent.mining import prediction_record

        while self.producing.is_set():
            rec = prediction_record(MODEL, {"width": 64, "height": 64, "conf": 0.25, "latency_ms": 1.5,
                                            "detections": [{"label": "cat", "score": 0.9, "box": [1, 2, 3, 4]}]})
            self.outbox.put("prediction", rec)
            self.sent.append(rec["id"])
            time.sleep(EVERY_S)

    def _drain(self) -> None:  # the daemon's uplink loop (uplink_interval 0.1 s)
        while self.running.is_set():
            self.uplink.drain()
            time.sleep(0.1)

    def stop_producing(self) -> list[str]:
        """Stop the producer; the ids of every record it put in the outbox."""
        self.producing.clear()
        if self._producer.is_alive():
            self._producer.join(5)
        return list(self.sent)

    def stop(self) -> None:
        self.stop_producing()
        self.running.clear()
        if self._drainer.is_alive():
            self._drainer.join(15)
        self.session.stop()
        self.outbox.close()


@pytest.mark.skipif(MOSQUITTO_BIN is None, reason="mosquitto not installed")
def test_broker_restarted_10_times_while_devices_stream_every_record_arrives_once(tmp_path):
    app, token = make_fleet_app(tmp_path, None, embedded_broker="mosquitto", broker_listen="127.0.0.1:0",
                                broker_auth=True)
    server = HubServer(app).start()
    api = Api(server.url, token)
    fleet = app.extensions["fleet"]
    devices: list[_Device] = []
    try:
        wait_until(lambda: fleet.client.connected.is_set(), 15, what="hub connected")
        for i in range(DEVICES):
            d = api.ok(api.post("/api/v1/devices", json={"id": f"s{i}"}), 201)
            devices.append(_Device(f"s{i}", d["token"], fleet.broker.url, tmp_path / f"s{i}"))
        # the hub writes new devices into the broker's password file within a second
        for dev in devices:
            dev.start()
        wait_until(lambda: all(d.session.connected.is_set() for d in devices), 20, what="devices connected")

        rng = random.Random(13)
        piled_up, at_restart, pids = [], [], set()
        for _ in range(RESTARTS):
            time.sleep(rng.uniform(0.8, 1.5))  # streaming, delivered
            at_restart.append(app.extensions["ymir"].database.db.execute(
                "SELECT count(*) FROM edge_predictions").fetchone()[0])
            pids.add(fleet.broker.proc.pid)
            fleet.broker.stop()  # SIGTERM: Mosquitto saves sessions and queued messages
            time.sleep(rng.uniform(0.3, 1.2))  # records pile up in the outboxes meanwhile
            piled_up.append(sum(d.outbox.stats()["depth"] for d in devices))
            fleet.broker.start()
        time.sleep(1.0)
        sent = {d.id: d.stop_producing() for d in devices}
        total = sum(len(v) for v in sent.values())

        wait_until(lambda: all(d.outbox.stats()["depth"] == 0 for d in devices), 60, interval=0.2,
                   what="outboxes emptied")
        # the broker may still hold PUBACKed messages for the hub: wait until the count settles
        db = app.extensions["ymir"].database.db

        def count() -> int:
            fleet.ingest.drain(5)
            return db.execute("SELECT count(*) FROM edge_predictions").fetchone()[0]

        last, settled = -1, time.monotonic()
        while count() != total and time.monotonic() - settled < 5.0:
            now = count()
            if now != last:
                last, settled = now, time.monotonic()
            time.sleep(0.2)
        stored = count()
        assert stored == total, f"{total - stored} of {total} records lost"

        # a PUBACK lost in an outage makes the agent send a batch again (outage re-deliveries above
        # vary from run to run): re-send one delivered batch through a device's session, as it would
        dev = devices[0]
        again = [{"id": rid, "ts": time.time(), "deployment": "tiny", "revision": 1, "detections": []}
                 for rid in sent[dev.id][:50]]
        dups_before = fleet.ingest.counters["duplicate_records"]
        assert dev.session.publish("predictions", protocol.prediction_batch(dev.id, 10**6, again), wait=5.0)
        wait_until(lambda: fleet.ingest.counters["duplicate_records"] >= dups_before + 50, 10,
                   what="the re-sent batch at the hub")
        fleet.ingest.drain(10)
        assert count() == total

        assert len(pids) == RESTARTS  # ten different broker processes carried the stream
        assert all(n > 0 for n in piled_up), piled_up  # every outage caught records in flight
        assert at_restart == sorted(at_restart) and 0 < at_restart[0] < at_restart[-1] < total, at_restart
        rows = db.execute("SELECT id, device_id FROM edge_predictions").fetchall()
        for dev in devices:
            stored = [r[0] for r in rows if r[1] == dev.id]
            assert len(stored) == len(set(stored)) == len(sent[dev.id])
            assert set(stored) == set(sent[dev.id]), f"{dev.id}: lost or foreign records"
            stats = dev.outbox.stats()
            assert stats["dropped"]["prediction"] == 0 and stats["sent"]["prediction"] == len(sent[dev.id])
        c = fleet.ingest.counters
        assert c["records"] == total and c["garbage"] == 0 and c["unknown_device"] == 0 and c["overflow"] == 0, c
    finally:
        for dev in devices:
            dev.stop()
        server.stop()
        app.extensions["ymir"].close()
