"""The broker connection: any MQTT broker by URL, or an embedded one; and the hub's MQTT client.

Embedded default (no ``YMIR_MQTT_URL``): a Mosquitto child process on ``broker_listen`` when the
``mosquitto`` binary exists (its config, persistence and log in ``cache/mosquitto/`` of the
workspace; ``user root`` when the hub runs as root, since Mosquitto would otherwise drop to the
``mosquitto`` user, who cannot write there), else an in-process amqtt broker (``pip install
amqtt``) with a warning: amqtt misses last wills on keepalive expiry and drops the offline queues
of anonymous sessions — fine for a demo, not for a fleet.

:class:`HubClient` is the hub's paho-mqtt 2 session (MQTT 5, persistent, stable client id per
workspace). Its network thread only enqueues incoming messages for :mod:`hub.fleet.ingest`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from agent import protocol
from detkit.errors import Unavailable
from hub.fleet.broker_files import TlsListener, acl_text, mosquitto_conf, passwd_text, write_private

log = logging.getLogger(__name__)
SUBSCRIBED = ("status", "reported", "metrics", "predictions", "cmd/result")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host if host not in ("0.0.0.0", "") else "127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class EmbeddedMosquitto:
    """A Mosquitto child process with a generated config: a plain listener on ``host:port`` (anonymous,
    or passwords + per-device ACL with ``auth``) and, with ``tls``, a TLS listener for devices.
    Files: :mod:`hub.fleet.broker_files`."""

    kind = "mosquitto"
    mqtt5 = True

    def __init__(self, folder: Path, host: str, port: int, prefix: str = "", auth: bool = False,
                 tls: TlsListener | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or _free_port(host)
        self.proc: subprocess.Popen | None = None
        self.auth = auth
        self.tls = None
        if tls is not None:
            self.tls = TlsListener(tls.host, tls.port or _free_port(tls.host), tls.cert, tls.key)
        self.passwd = self.acl = None
        if auth:
            self.passwd, self.acl = self.folder / "passwd", self.folder / "acl"
            self.passwd.touch(mode=0o600)
            self.acl.write_text(acl_text(prefix))
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text(mosquitto_conf(
            (host, self.port), passwd=self.passwd, acl=self.acl, tls=self.tls,
            run_as="root" if hasattr(os, "geteuid") and os.geteuid() == 0 else None,
            persistence_dir=self.folder, log_file=self.folder / "mosquitto.log"))

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def tls_url(self) -> str | None:
        """``mqtts://host:port`` of the TLS listener (what devices are given), or None."""
        if self.tls is None:
            return None
        host = "127.0.0.1" if self.tls.host in ("0.0.0.0", "") else self.tls.host
        return f"mqtts://{host}:{self.tls.port}"

    def start(self) -> EmbeddedMosquitto:
        binary = mosquitto_binary()
        if binary is None:
            raise Unavailable("mosquitto is not installed (apt-get install -y mosquitto)")
        self.proc = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        up = _wait_port(self.host, self.port, 10.0)
        if up and self.tls is not None:
            up = _wait_port(self.tls.host, self.tls.port, 5.0)
        if not up:
            self.stop()
            log_text = (self.folder / "mosquitto.log").read_text(errors="replace")[-2000:] \
                if (self.folder / "mosquitto.log").exists() else ""
            raise Unavailable(f"embedded mosquitto did not start on {self.host}:{self.port}: {log_text}")
        log.info("embedded mosquitto on %s (pid %s)", self.url, self.proc.pid)
        return self

    def set_passwords(self, entries: list[tuple[str, str]]) -> None:
        """Rewrite the password file (``(user, mosquitto hash)``) and make Mosquitto reload it (SIGHUP)."""
        write_private(self.passwd, passwd_text(entries))
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # mosquitto saves its persistence file on SIGTERM
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class EmbeddedAmqtt:
    """An in-process amqtt broker on its own asyncio loop thread (demo only; see module doc).
    amqtt speaks MQTT 3.1.1 only: the hub's client falls back to 3.1.1 with it."""

    kind = "amqtt"
    mqtt5 = False

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port or _free_port(host)
        self._loop = None
        self._thread: threading.Thread | None = None
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"

    def start(self) -> EmbeddedAmqtt:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise Unavailable("no embedded broker: install mosquitto (apt-get install -y mosquitto) or "
                              "pip install amqtt, or set YMIR_MQTT_URL") from None
        import asyncio

        log.warning("embedded amqtt broker: it misses last wills on keepalive expiry and drops offline queues "
                    "of anonymous sessions; use Mosquitto (or any broker via YMIR_MQTT_URL) for a real fleet")
        self._loop = asyncio.new_event_loop()
        config = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise Unavailable(f"embedded amqtt broker did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        import asyncio

        if self._loop is None or self._broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(10)
        except Exception:  # a broker that fails to shut down cleanly must not block the hub's exit
            log.exception("amqtt shutdown")
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)
        self._loop = None


def start_embedded(settings) -> EmbeddedMosquitto | EmbeddedAmqtt:
    """The embedded broker ``settings.embedded_broker`` asks for (``auto``: mosquitto, else amqtt);
    amqtt is started here, Mosquitto by the caller (with auth on, after its password file is written)."""
    host, _, port = settings.broker_listen.rpartition(":")
    kind = settings.embedded_broker
    tls = None
    if settings.broker_tls_listen:
        tls_host, _, tls_port = settings.broker_tls_listen.rpartition(":")
        tls = TlsListener(tls_host, int(tls_port), settings.broker_tls_cert, settings.broker_tls_key)
    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary()):
        return EmbeddedMosquitto(settings.cache_dir / "mosquitto", host, int(port), settings.mqtt_prefix,
                                 auth=settings.broker_auth, tls=tls)
    if settings.broker_auth:
        raise Unavailable("YMIR_BROKER_AUTH needs the embedded Mosquitto (amqtt cannot check device passwords here)")
    if tls is not None:
        raise Unavailable("YMIR_BROKER_TLS_LISTEN needs the embedded Mosquitto (the amqtt fallback has no TLS here)")
    return EmbeddedAmqtt(host, int(port)).start()


Handler = Callable[[str, str, bytes], None]  # (device_id, kind, payload)


class HubClient:
    """The hub's MQTT session: subscribes to every device's uplink topics, publishes desired/cmd.
    ``mqtts://`` URLs use TLS, trusting ``ca_file`` (default: the system's CA store)."""

    def __init__(self, url: str, prefix: str, client_id: str, on_message: Handler, mqtt5: bool = True,
                 username: str | None = None, password: str | None = None, ca_file: str | None = None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or (8883 if u.scheme in ("mqtts", "ssl") else 1883)
        self.prefix = prefix
        self.on_message = on_message
        self.connected = threading.Event()
        self.dropped_topics = 0
        self._mqtt = mqtt
        self.mqtt5 = mqtt5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311, clean_session=None if mqtt5 else False)
        if username or u.username:
            self.client.username_pw_set(username or u.username, password if username else u.password)
        if u.scheme in ("mqtts", "ssl"):  # the server's certificate and host name are checked
            self.client.tls_set(ca_certs=str(ca_file) if ca_file else None)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message

    def start(self, wait: float = 10.0) -> HubClient:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        if self.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600  # queued QoS 1 uplinks survive a hub restart
            self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        else:  # MQTT 3.1.1: a persistent session is clean_session=False
            self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if wait and not self.connected.wait(wait):
            log.warning("broker %s:%s not reachable yet; the hub keeps trying", self.host, self.port)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the hub: %s", reason_code)
            return
        client.subscribe([(protocol.subscription(self.prefix, k), 1) for k in SUBSCRIBED])
        self.connected.set()
        log.info("hub connected to the broker %s:%s", self.host, self.port)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.warning("hub disconnected from the broker: %s", reason_code)

    def _message(self, client, userdata, msg) -> None:
        parsed = protocol.parse_topic(self.prefix, msg.topic)
        if parsed is None:
            self.dropped_topics += 1
            return
        try:
            self.on_message(parsed[0], parsed[1], bytes(msg.payload))
        except Exception:  # the network thread must survive anything a handler does
            log.exception("hub handler failed for %s", msg.topic)

    def publish(self, device_id: str, kind: str, payload: dict | None, wait: float = 5.0) -> bool:
        """Publish on a device topic (QoS/retain from the protocol); ``None`` clears a retained topic.
        Returns whether the broker acknowledged within ``wait`` seconds."""
        data = b"" if payload is None else protocol.encode(payload)
        try:
            info = self.client.publish(protocol.topic(self.prefix, device_id, kind), data, qos=protocol.QOS[kind],
                                       retain=kind in protocol.RETAINED)
        except (ValueError, OSError) as exc:
            log.warning("publish %s to %s failed: %s", kind, device_id, exc)
            return False
        if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS,):
            return False
        try:
            info.wait_for_publish(wait)
        except (ValueError, RuntimeError):
            return False
        return info.is_published()
