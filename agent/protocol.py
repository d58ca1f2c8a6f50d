"""The MQTT contract between hub and agent: topics and JSON payloads (schema version 1).

The hub imports this module; both sides build and parse payloads only through it. Every payload
is a JSON object with ``"schema": 1``. Topics, under a configurable prefix (default ``ymir/v1``):

==============================  ========  =====  ================================================
topic                           from      QoS    payload
==============================  ========  =====  ================================================
``devices/{id}/status``         agent     1, R   :func:`status` (``online``; the last will is
                                                 ``offline``)
``devices/{id}/desired``        hub       1, R   :class:`Desired`: deployments with revisions
``devices/{id}/reported``       agent     1      :func:`reported`: one deployment's state change
``devices/{id}/cmd``            hub       1      :class:`Command`
``devices/{id}/cmd/result``     agent     1      :func:`command_result`
``devices/{id}/metrics``        agent     0      :func:`metrics`
``devices/{id}/predictions``    agent     1      :func:`prediction_batch`
==============================  ========  =====  ================================================

(R = retained.) Parsing raises :class:`ProtocolError` (a :class:`detkit.errors.BadInput`) naming
the field; receivers log and drop such payloads. Large bytes (models, frames) never go through
the broker: deployments carry an HTTP ``url`` (``GET {hub}/api/v1/artifacts/{sha256}``).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from detkit.errors import BadInput

SCHEMA = 1
DEFAULT_PREFIX = "ymir/v1"
KINDS = ("status", "desired", "reported", "cmd", "cmd/result", "metrics", "predictions")
RETAINED = frozenset({"status", "desired"})
QOS = {"status": 1, "desired": 1, "reported": 1, "cmd": 1, "cmd/result": 1, "metrics": 0, "predictions": 1}
STATES = ("downloading", "verifying", "loading", "healthy", "failed", "rolled_back", "disabled")
COMMANDS = ("enable", "disable", "rollback", "restart", "collect_logs")
BACKENDS = ("onnxruntime", "openvino", "tensorrt")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Deployment settings the agent understands, with their valid ranges.
SETTING_RANGES = {"conf": (0.0, 1.0), "iou": (0.0, 1.0), "max_det": (1, 10000)}


class ProtocolError(BadInput):
    """A payload that does not follow this module's schema."""

    code = "bad_payload"


# --- topics ---------------------------------------------------------------------------------


def topic(prefix: str, device_id: str, kind: str) -> str:
    """``{prefix}/devices/{device_id}/{kind}``; ``kind`` is one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{prefix}/devices/{device_id}/{kind}"


def subscription(prefix: str, kind: str) -> str:
    """Wildcard subscription for ``kind`` on every device (what the hub subscribes to)."""
    return topic(prefix, "+", kind)


def parse_topic(prefix: str, name: str) -> tuple[str, str] | None:
    """``(device_id, kind)`` of a topic under ``prefix``, or None when it is not one of ours."""
    head = f"{prefix}/devices/"
    if not name.startswith(head):
        return None
    device, _, kind = name[len(head):].partition("/")
    if kind not in KINDS or not _NAME_RE.match(device):
        return None
    return device, kind


@dataclass(frozen=True)
class Topics:
    """All topics of one device."""

    prefix: str
    device_id: str

    def __getattr__(self, kind: str) -> str:  # topics.status, topics.cmd_result, ...
        k = kind.replace("_", "/")
        if k in KINDS:
            return topic(self.prefix, self.device_id, k)
        raise AttributeError(kind)


# --- helpers --------------------------------------------------------------------------------


def encode(payload: dict) -> bytes:
    """Compact UTF-8 JSON (NaN refused: other JSON parsers reject it)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def decode(raw: bytes | str, kind: str) -> dict:
    """JSON object with the right schema version, else :class:`ProtocolError`."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise ProtocolError(f"{kind}: payload is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{kind}: payload must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise ProtocolError(f"{kind}: unsupported schema {data.get('schema')!r}; this build speaks {SCHEMA}")
    return data


def _get(data: dict, key: str, types: type | tuple, where: str, default: Any = ..., ) -> Any:
    if key not in data:
        if default is ...:
            raise ProtocolError(f"{where}: missing field {key!r}")
        return default
    value = data[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ProtocolError(f"{where}.{key}: expected {types}, got a boolean")
    if not isinstance(value, types):
        raise ProtocolError(f"{where}.{key}: expected {getattr(types, '__name__', types)}, got {type(value).__name__}")
    return value


def _name(value: str, where: str) -> str:
    if not _NAME_RE.match(value):
        raise ProtocolError(f"{where}: {value!r} is not a valid name ([A-Za-z0-9_.-], 1-64)")
    return value


# --- desired state --------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """One model the hub wants running on the device, at a revision."""

    name: str
    revision: int
    sha256: str
    url: str
    size: int
    backend: str = "onnxruntime"
    settings: dict = field(default_factory=dict)
    enabled: bool = True
    id: str = ""

    @classmethod
    def from_dict(cls, data: Any, where: str = "deployment") -> Deployment:
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected an object")
        name = _name(_get(data, "name", str, where), f"{where}.name")
        where = f"{where}[{name}]"
        revision = _get(data, "revision", int, where)
        sha = _get(data, "sha256", str, where).lower()
        if not _SHA_RE.match(sha):
            raise ProtocolError(f"{where}.sha256: expected 64 hex digits")
        url = _get(data, "url", str, where)
        if not url.startswith(("http://", "https://", "/")):
            raise ProtocolError(f"{where}.url: expected an http(s) URL or a hub path, got {url!r}")
        size = _get(data, "size", int, where)
        if revision < 0 or size < 0:
            raise ProtocolError(f"{where}: revision and size must be >= 0")
        backend = _get(data, "backend", str, where, "onnxruntime")
        if backend not in BACKENDS:
            raise ProtocolError(f"{where}.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        settings = _get(data, "settings", dict, where, {})
        for key, value in settings.items():
            lo_hi = SETTING_RANGES.get(key)
            if lo_hi is None:
                continue  # forward compatible: unknown settings pass through
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ProtocolError(f"{where}.settings.{key}: expected a number")
            if not lo_hi[0] <= value <= lo_hi[1]:
                raise ProtocolError(f"{where}.settings.{key}: {value} is outside [{lo_hi[0]}, {lo_hi[1]}]")
        return cls(
            name=name, revision=revision, sha256=sha, url=url, size=size, backend=backend,
            settings=dict(settings), enabled=_get(data, "enabled", bool, where, True),
            id=str(_get(data, "id", (str, int), where, "")),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Desired:
    """The retained desired state: a document revision and the deployments it lists."""

    revision: int
    deployments: tuple[Deployment, ...]
    ts: float = 0.0

    @classmethod
    def parse(cls, raw: bytes | str | dict) -> Desired:
        data = raw if isinstance(raw, dict) else decode(raw, "desired")
        revision = _get(data, "revision", int, "desired")
        items = _get(data, "deployments", list, "desired")
        deps = tuple(Deployment.from_dict(d, f"desired.deployments[{i}]") for i, d in enumerate(items))
        names = [d.name for d in deps]
        if len(set(names)) != len(names):
            raise ProtocolError("desired.deployments: names must be unique")
        ts = _get(data, "ts", (int, float), "desired", 0.0)
        return cls(revision=revision, deployments=deps, ts=float(ts))

    def to_payload(self) -> dict:
        return {"schema": SCHEMA, "revision": self.revision, "ts": self.ts or time.time(),
                "deployments": [d.to_dict() for d in self.deployments]}


def desired(revision: int, deployments: list[dict | Deployment]) -> dict:
    """Build (and validate) a desired-state payload; what the hub publishes retained."""
    deps = tuple(d if isinstance(d, Deployment) else Deployment.from_dict(d) for d in deployments)
    return Desired(revision=revision, deployments=deps, ts=time.time()).to_payload()


# --- agent -> hub ---------------------------------------------------------------------------


def status(device_id: str, state: str, **info: Any) -> dict:
    """Status payload: ``state`` is ``online`` or ``offline``; ``info`` carries ``agent_version``,
    ``backends`` ({key: {"ok": bool, "reason": str}}), ``hardware`` and ``deployments``."""
    if state not in ("online", "offline"):
        raise ValueError(f"status state must be online/offline, got {state!r}")
    return {"schema": SCHEMA, "device_id": device_id, "state": state, "ts": time.time(), **info}


def reported(
    seq: int, deployment: str, revision: int, state: str, reason: str = "", **info: Any
) -> dict:
    """One deployment state change; ``seq`` increases monotonically across restarts."""
    if state not in STATES:
        raise ValueError(f"unknown deployment state {state!r}")
    return {"schema": SCHEMA, "seq": seq, "deployment": deployment, "revision": revision, "state": state,
            "reason": reason, "ts": time.time(), **info}


@dataclass(frozen=True)
class Command:
    """A command from the hub: ``action`` one of :data:`COMMANDS`, for a ``deployment`` if any."""

    id: str
    action: str
    deployment: str = ""
    args: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes | str | dict) -> Command:
        data = raw if isinstance(raw, dict) else decode(raw, "cmd")
        cid = str(_get(data, "id", (str, int), "cmd"))
        action = _get(data, "action", str, "cmd")
        if action not in COMMANDS:
            raise ProtocolError(f"cmd.action: {action!r} is not one of {', '.join(COMMANDS)}")
        dep = _get(data, "deployment", str, "cmd", "")
        if dep:
            _name(dep, "cmd.deployment")
        if action in ("enable", "disable", "rollback") and not dep:
            raise ProtocolError(f"cmd: {action} needs a deployment")
        return cls(id=cid, action=action, deployment=dep, args=_get(data, "args", dict, "cmd", {}))

    def to_payload(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


def command(cid: str, action: str, deployment: str = "", **args: Any) -> dict:
    """Build (and validate) a command payload; what the hub publishes."""
    return Command.parse({"schema": SCHEMA, "id": cid, "action": action, "deployment": deployment,
                          "args": args}).to_payload()


def command_result(cid: str, ok: bool, result: Any = None, error: str = "") -> dict:
    return {"schema": SCHEMA, "id": cid, "ok": ok, "result": result, "error": error, "ts": time.time()}


def metrics(**values: Any) -> dict:
    """Periodic metrics: ``inferences``, ``errors``, ``latency_ms`` ({p50, p95}), ``outbox``
    ({depth, dropped, ...}), ``cpu_percent``, ``memory_mb``, ``interval_s``."""
    return {"schema": SCHEMA, "ts": time.time(), **values}


def prediction_batch(device_id: str, batch: int, records: list[dict]) -> dict:
    """A batch of prediction records (see ``agent.mining.prediction_record``)."""
    return {"schema": SCHEMA, "device_id": device_id, "batch": batch, "records": records}


def parse_prediction_batch(raw: bytes | str) -> dict:
    data = decode(raw, "predictions")
    _get(data, "records", list, "predictions")
    _get(data, "batch", int, "predictions")
    return data
