"""A real Mosquitto broker for tests, on a free loopback port (reusable by agent, hub and e2e tests).

Usage from a ``conftest.py``::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ folder
    from fixtures_mqtt import mosquitto  # noqa: F401  (the pytest fixture)

The :class:`Mosquitto` object can ``stop()`` and ``start()`` again on the same port with the same
persistence folder (``restart()``), so sessions and queued QoS 1 messages survive like in
production. Tests needing it are skipped where the binary is absent. :class:`Collector` is a
test-side client that records messages and waits for the one a test expects.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, up: bool = True) -> None:
    """Wait until ``port`` accepts (``up``) or refuses (not ``up``) connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'} in {timeout}s")


class Mosquitto:
    """One broker process with a generated config in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None, persistence: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        user = "user root\n" if os.geteuid() == 0 else ""  # as root it would drop to user mosquitto
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"{user}"
            f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {self.folder}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {self.folder}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start; log:\n{self.log()}") from None
        return self

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        wait_port(self.port, up=False)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def log(self) -> str:
        p = self.folder / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture
def mosquitto(tmp_path):
    """A running broker (``.url``, ``.port``, ``.restart()``), stopped after the test."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not installed (apt-get install -y mosquitto)")
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


class Collector:
    """A test-side MQTT client (paho 2, MQTT 5) that records every message on ``topics``.

    ``wait_for(pred, timeout)`` returns the first recorded ``(topic, payload_dict_or_bytes)`` with
    ``pred`` true; ``publish`` sends JSON (dicts) or raw bytes. With ``client_id`` and
    ``persistent=True`` it keeps a broker session (queued QoS 1 messages survive its absence).
    """

    def __init__(self, url: str, topics: list[str], client_id: str = "", persistent: bool = False):
        import json
        import threading
        from urllib.parse import urlsplit

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self._json = json
        self.messages: list[tuple[str, object]] = []
        self._cv = threading.Condition()
        self._subscribed = threading.Event()
        u = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{id(self)}",
                                  protocol=mqtt.MQTTv5)
        self.topics = topics

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe([(t, 1) for t in topics])

        def on_subscribe(client, userdata, mid, rcs, props):
            self._subscribed.set()

        def on_message(client, userdata, msg):
            try:
                payload: object = json.loads(msg.payload)
            except ValueError:
                payload = bytes(msg.payload)
            with self._cv:
                self.messages.append((msg.topic, payload))
                self._cv.notify_all()

        self.client.on_connect, self.client.on_message, self.client.on_subscribe = on_connect, on_message, on_subscribe
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        self.client.connect(u.hostname, u.port, keepalive=5, clean_start=not persistent, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("collector did not subscribe")

    def wait_for(self, pred, timeout: float = 20.0, start: int = 0):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for i in range(start, len(self.messages)):
                    if pred(*self.messages[i]):
                        return self.messages[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching message in {timeout}s; got {[m[0] for m in self.messages[-20:]]}")
                self._cv.wait(left)

    def on(self, suffix: str) -> list:
        """Payloads received on topics ending with ``suffix``."""
        with self._cv:
            return [p for t, p in self.messages if t.endswith(suffix)]

    def publish(self, topic: str, payload, retain: bool = False, qos: int = 1) -> None:
        data = payload if isinstance(payload, bytes | str) else self._json.dumps(payload)
        self.client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
