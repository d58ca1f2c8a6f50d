"""The agent's MQTT session: paho-mqtt 2.x, MQTT 5, stable client id, persistent session.

``clean_start=False`` plus a session expiry make the broker keep the agent's subscriptions and
queued QoS 1 messages (commands) while it is offline. The last will publishes a retained
``offline`` status; every (re)connect re-subscribes (which re-delivers the retained desired
state) and hands control to the agent through ``on_connect``. Callbacks run on paho's network
thread, so they only enqueue; the agent's worker does the work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent import protocol
from agent.config import AgentSettings

log = logging.getLogger(__name__)


def client_id(device_id: str) -> str:
    """The stable MQTT client id of a device (the broker keys its persistent session on it)."""
    return f"ymir-agent-{device_id}"


class MqttSession:
    """Connects, keeps the session, and routes incoming messages by topic kind."""

    def __init__(self, settings: AgentSettings, on_message: Callable[[str, bytes], None],
                 on_connect: Callable[[], None] | None = None, offline_status: dict | None = None):
        hp = settings.mqtt_host_port_tls
        if hp is None:
            raise ValueError("MQTT is disabled (no mqtt_url)")
        self.host, self.port, tls = hp
        self.settings = settings
        self.topics = protocol.Topics(settings.topic_prefix, settings.device_id)
        self._on_message, self._on_connect = on_message, on_connect
        self.connected = threading.Event()
        self.v5 = settings.mqtt_version != "3.1.1"
        if self.v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id(settings.device_id),
                                      protocol=mqtt.MQTTv5)
        else:  # 3.1.1-only brokers (amqtt): a persistent session is clean_session=False
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id(settings.device_id),
                                      protocol=mqtt.MQTTv311, clean_session=False)
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
        if tls:  # the broker's certificate and host name are checked against mqtt_ca_file (or the system's CAs)
            self.client.tls_set(ca_certs=settings.mqtt_ca_file or None)
        self.client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(settings.mqtt_reconnect_max)))
        self.client.max_queued_messages_set(1000)
        offline = offline_status or protocol.status(settings.device_id, "offline")
        self.client.will_set(self.topics.status, protocol.encode(offline), qos=1, retain=True)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message

    def start(self) -> None:
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.settings.mqtt_session_expiry
            self.client.connect_async(self.host, self.port, keepalive=self.settings.mqtt_keepalive,
                                      clean_start=False, properties=props)
        else:
            self.client.connect_async(self.host, self.port, keepalive=self.settings.mqtt_keepalive)
        self.client.loop_start()

    def stop(self, final_status: dict | None = None) -> None:
        """Publish ``final_status`` (retained; the will does not fire on a clean disconnect), then leave."""
        if final_status is not None and self.connected.is_set():
            self.publish("status", final_status, wait=2.0)
        self.client.disconnect()
        self.client.loop_stop()

    # ---- paho callbacks (network thread) ----------------------------------------------------
    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        log.info("connected to %s:%s (session present: %s)", self.host, self.port, flags.session_present)
        if self.v5:
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
            client.subscribe([(self.topics.desired, opts), (self.topics.cmd, opts)])
        else:
            client.subscribe([(self.topics.desired, 1), (self.topics.cmd, 1)])
        self.connected.set()
        if self._on_connect:
            self._on_connect()

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.warning("disconnected from the broker: %s", reason_code)

    def _message(self, client, userdata, msg) -> None:
        parsed = protocol.parse_topic(self.settings.topic_prefix, msg.topic)
        if parsed is None or parsed[0] != self.settings.device_id:
            log.warning("ignoring a message on unexpected topic %r", msg.topic)
            return
        try:
            self._on_message(parsed[1], bytes(msg.payload))
        except Exception:  # never let a handler take the network thread down
            log.exception("handler failed for %s", msg.topic)

    # ---- publishing -------------------------------------------------------------------------
    def publish(self, kind: str, payload: dict, wait: float | None = None) -> bool:
        """Publish ``payload`` on this device's ``kind`` topic (QoS/retain from :mod:`agent.protocol`).

        With ``wait``, blocks up to that many seconds for the broker's acknowledgement and returns
        whether it came; without, returns whether the message was handed to paho.
        """
        if wait is not None and not self.connected.is_set():
            return False  # paho would queue it and send it on reconnect: the caller keeps it instead
        try:
            info = self.client.publish(getattr(self.topics, kind.replace("/", "_")), protocol.encode(payload),
                                       qos=protocol.QOS[kind], retain=kind in protocol.RETAINED)
        except (ValueError, OSError) as exc:
            log.warning("publish %s failed: %s", kind, exc)
            return False
        if wait is None:
            return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
        try:
            info.wait_for_publish(wait)
        except (ValueError, RuntimeError) as exc:
            log.info("publish %s not acknowledged: %s", kind, exc)
            return False
        return info.is_published()
