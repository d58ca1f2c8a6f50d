"""Agent settings: one table, read from a TOML file and ``YMIR_AGENT_*`` environment variables.

This is the only module of the agent that reads ``os.environ``. Every setting is declared once in
:data:`SETTINGS` (name, type, default, help); :func:`load_settings` merges, in increasing priority,
the defaults, the TOML file (flat keys, or ``[section]`` tables whose keys join as
``section_key``: ``[mqtt] url = ...`` is ``mqtt_url``) and the environment
(``YMIR_AGENT_MQTT_URL``), validates everything once and returns a frozen :class:`AgentSettings`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from detkit.errors import BadInput, YmirError

ENV_PREFIX = "YMIR_AGENT_"
KNOWN_BACKENDS = ("onnxruntime", "openvino", "tensorrt")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Setting:
    """One setting: its name, parser, default and the help text the docs repeat."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {type(v).__name__}")
    return v


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
        return int(v)
    raise ValueError(f"expected an integer, got {v!r}")


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return float(v)
    raise ValueError(f"expected a number, got {v!r}")


def _list(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [p.strip() for p in v.split(",") if p.strip()]
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"expected a list of names, got {v!r}")
    return tuple(v)


SETTINGS: tuple[Setting, ...] = (
    Setting("device_id", _str, "", "Stable device id: MQTT client id and topic segment ([A-Za-z0-9_.-], 1-64)."),
    Setting("hub_url", _str, "", "Base URL of the hub (artifact downloads, capture uploads), e.g. http://hub:5000."),
    Setting("device_token", _str, "", "Bearer token the agent sends to the hub (downloads, uploads)."),
    Setting("hub_public_key", _str, "", "The hub's package-signing key (ed25519:<base64>, printed at provisioning); "
            "when set, a package whose signature fails is refused."),
    Setting("mqtt_url", _str, "", "Broker URL mqtt://host:1883 (or mqtts://); empty disables MQTT."),
    Setting("mqtt_username", _str, "", "Broker user name (optional)."),
    Setting("mqtt_password", _str, "", "Broker password (optional)."),
    Setting("mqtt_ca_file", _str, "", "PEM CA file the agent trusts for an mqtts:// broker "
            "(default: the system's CA store); the broker's certificate and host name are checked."),
    Setting("mqtt_keepalive", _int, 30, "MQTT keepalive in seconds; the broker fires the last will after 1.5x."),
    Setting("mqtt_session_expiry", _int, 86400, "MQTT 5 session expiry in seconds (persistent session)."),
    Setting("mqtt_version", _str, "5", "MQTT protocol: 5 (default) or 3.1.1 (for 3.1.1-only brokers such as amqtt)."),
    Setting("mqtt_reconnect_max", _float, 30.0, "Longest wait between reconnect attempts (backoff from 1 s)."),
    Setting("topic_prefix", _str, "ymir/v1", "Prefix of every MQTT topic."),
    Setting("store_dir", _str, "./agent-store", "Model store: slots, downloads, state, outbox, logs."),
    Setting("keep_slots", _int, 2, "Previous model slots kept per deployment for rollback."),
    Setting("http_bind", _str, "127.0.0.1:8080", "host:port of the HTTP inference server (empty disables it)."),
    Setting("http_threads", _int, 4, "waitress worker threads."),
    Setting("http_token", _str, "", "Bearer token required by the inference routes (empty: open)."),
    Setting("allowed_backends", _list, ("onnxruntime",), "Runtime backends deployments may use."),
    Setting("health_latency_ms", _float, 5000.0, "Latency budget of the deploy-time health check."),
    Setting("download_timeout", _float, 30.0, "Seconds without progress before a download attempt fails."),
    Setting("download_max_bytes", _int, 2 * 1024**3, "Largest artifact the agent accepts."),
    Setting("metrics_interval", _float, 30.0, "Seconds between metrics messages."),
    Setting("desired_wait", _float, 1.0, "Seconds to wait for the retained desired state after (re)connect."),
    Setting("uplink_predictions", _bool, True, "Send /v1/detect records to the predictions topic."),
    Setting("uplink_batch_size", _int, 50, "Prediction records per MQTT message."),
    Setting("uplink_interval", _float, 2.0, "Seconds between outbox drains."),
    Setting("uplink_outbox_max", _int, 10000, "Outbox rows kept; the oldest are dropped (and counted) beyond."),
    Setting("uplink_outbox_max_bytes", _int, 256 * 1024**2, "Outbox bytes kept (frames); oldest dropped beyond."),
    Setting("mining_enabled", _bool, True, "Select frames for upload to the hub (edge mining)."),
    Setting("mining_score", _str, "entropy", "Uncertainty score frames are ranked by (see detkit.scoring)."),
    Setting("mining_top_k", _int, 3, "Frames kept per mining window (highest score first)."),
    Setting("mining_window", _float, 60.0, "Mining window in seconds."),
    Setting("mining_min_score", _float, 0.0, "Frames scoring below this are never selected by score."),
    Setting("mining_rate_per_min", _float, 10.0, "Upper bound on captured frames per minute."),
    Setting("mining_control_share", _float, 0.02, "Share of frames captured at random as a control sample."),
    Setting("mining_conf", _float, 0.05, "Lowest box score kept for scoring (below the response's conf)."),
    Setting("log_level", _str, "INFO", "Python logging level."),
    Setting("test_pause_after_switch", _float, 0.0, "Fault tests only: seconds a deployment waits right after "
            "switching `current`, before its healthy report (0: never), so a test can kill it there."),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class AgentSettings:
    """Validated agent settings (see :data:`SETTINGS` for meanings)."""

    device_id: str = ""
    hub_url: str = ""
    device_token: str = ""
    hub_public_key: str = ""
    mqtt_url: str = ""
    mqtt_username: str = ""
    mqtt_password: str = ""
    mqtt_ca_file: str = ""
    mqtt_keepalive: int = 30
    mqtt_session_expiry: int = 86400
    mqtt_version: str = "5"
    mqtt_reconnect_max: float = 30.0
    topic_prefix: str = "ymir/v1"
    store_dir: str = "./agent-store"
    keep_slots: int = 2
    http_bind: str = "127.0.0.1:8080"
    http_threads: int = 4
    http_token: str = ""
    allowed_backends: tuple[str, ...] = ("onnxruntime",)
    health_latency_ms: float = 5000.0
    download_timeout: float = 30.0
    download_max_bytes: int = 2 * 1024**3
    metrics_interval: float = 30.0
    desired_wait: float = 1.0
    uplink_predictions: bool = True
    uplink_batch_size: int = 50
    uplink_interval: float = 2.0
    uplink_outbox_max: int = 10000
    uplink_outbox_max_bytes: int = 256 * 1024**2
    mining_enabled: bool = True
    mining_score: str = "entropy"
    mining_top_k: int = 3
    mining_window: float = 60.0
    mining_min_score: float = 0.0
    mining_rate_per_min: float = 10.0
    mining_control_share: float = 0.02
    mining_conf: float = 0.05
    log_level: str = "INFO"
    test_pause_after_switch: float = 0.0

    @property
    def store_path(self) -> Path:
        return Path(self.store_dir)

    @property
    def http_host_port(self) -> tuple[str, int] | None:
        """``(host, port)`` of the HTTP server, or None when disabled."""
        if not self.http_bind:
            return None
        host, _, port = self.http_bind.rpartition(":")
        return host or "127.0.0.1", int(port)

    @property
    def mqtt_host_port_tls(self) -> tuple[str, int, bool] | None:
        """``(host, port, tls)`` of the broker, or None when MQTT is disabled."""
        if not self.mqtt_url:
            return None
        u = urlsplit(self.mqtt_url)
        tls = u.scheme in ("mqtts", "ssl")
        return u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls


def _flatten(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, dict):
                    raise BadInput(f"{where}: table [{key}.{sub}] is nested too deep")
                out[f"{key}_{sub}"] = v
        else:
            out[key] = value
    return out


def _validate(s: AgentSettings, require_device: bool) -> None:
    problems = []
    if require_device and not s.device_id:
        problems.append("device_id is required")
    if s.device_id and not _ID_RE.match(s.device_id):
        problems.append(f"device_id {s.device_id!r} must match {_ID_RE.pattern}")
    if s.hub_public_key:
        from detkit.signing import parse_public_key

        try:
            parse_public_key(s.hub_public_key)
        except YmirError as exc:
            problems.append(f"hub_public_key: {exc.message}")
    for name in ("hub_url",):
        url = getattr(s, name)
        if url and urlsplit(url).scheme not in ("http", "https"):
            problems.append(f"{name} must be an http(s) URL, got {url!r}")
    if s.mqtt_url and urlsplit(s.mqtt_url).scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        problems.append(f"mqtt_url must be mqtt://host:port or mqtts://host:port, got {s.mqtt_url!r}")
    if s.mqtt_url:
        try:
            _ = urlsplit(s.mqtt_url).port
        except ValueError:
            problems.append(f"mqtt_url has a bad port: {s.mqtt_url!r}")
    if s.mqtt_ca_file and not Path(s.mqtt_ca_file).is_file():
        problems.append(f"mqtt_ca_file {s.mqtt_ca_file!r}: no such file")
    if not s.topic_prefix or "+" in s.topic_prefix or "#" in s.topic_prefix or s.topic_prefix.endswith("/"):
        problems.append(f"topic_prefix {s.topic_prefix!r} must be non-empty, without wildcards or a trailing /")
    if s.http_bind:
        host, _, port = s.http_bind.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) < 65536:
            problems.append(f"http_bind must be host:port, got {s.http_bind!r}")
    unknown = [b for b in s.allowed_backends if b not in KNOWN_BACKENDS]
    if unknown or not s.allowed_backends:
        problems.append(f"allowed_backends must be some of {', '.join(KNOWN_BACKENDS)}, got {list(s.allowed_backends)}")
    if s.mqtt_version not in ("5", "3.1.1"):
        problems.append(f"mqtt_version must be 5 or 3.1.1, got {s.mqtt_version!r}")
    positive = ("mqtt_keepalive", "mqtt_session_expiry", "mqtt_reconnect_max", "http_threads", "uplink_batch_size", "uplink_outbox_max",
                "uplink_outbox_max_bytes", "health_latency_ms", "download_timeout", "download_max_bytes",
                "metrics_interval", "uplink_interval", "mining_window")
    for name in positive:
        if getattr(s, name) <= 0:
            problems.append(f"{name} must be > 0, got {getattr(s, name)!r}")
    for name in ("keep_slots", "mining_top_k", "mining_rate_per_min", "desired_wait", "test_pause_after_switch"):
        if getattr(s, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(s, name)!r}")
    for name in ("mining_control_share", "mining_conf", "mining_min_score"):
        if not 0.0 <= getattr(s, name) <= 1.0:
            problems.append(f"{name} must be within [0, 1], got {getattr(s, name)!r}")
    from detkit.scoring import SCORES  # local: keeps config import light

    if s.mining_score not in SCORES:
        problems.append(f"mining_score must be one of {', '.join(SCORES)}, got {s.mining_score!r}")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append(f"log_level {s.log_level!r} is not a logging level")
    if problems:
        raise BadInput("agent settings: " + "; ".join(problems))


def load_settings(
    path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    require_device: bool = True,
) -> AgentSettings:
    """Merge defaults < TOML file < environment < ``overrides``, validate once, return settings.

    ``env`` defaults to ``os.environ``. Unknown keys in the file or ``YMIR_AGENT_*`` variables are
    rejected (a typo must not silently fall back to a default). Raises :class:`BadInput` listing
    every problem.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BadInput(f"agent config {p}: file not found") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"agent config {p}: not valid TOML ({exc})") from exc
        for k, v in _flatten(data, str(p)).items():
            values[k], sources[k] = v, f"{p}: {k}"
    for key, v in env.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            values[name], sources[name] = v, key
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k], sources[k] = v, f"option {k}"
    parsed: dict[str, Any] = {}
    problems = []
    for name, raw in values.items():
        setting = _BY_NAME.get(name)
        if setting is None:
            problems.append(f"unknown setting {sources[name]}")
            continue
        try:
            parsed[name] = setting.parse(raw)
        except (ValueError, TypeError) as exc:
            problems.append(f"{sources[name]}: {exc}")
    if problems:
        raise BadInput("agent settings: " + "; ".join(problems))
    settings = AgentSettings(**parsed)
    _validate(settings, require_device)
    return settings


def setting_names() -> list[str]:
    """Every setting name (the docs test checks each is documented)."""
    return [f.name for f in fields(AgentSettings)]
