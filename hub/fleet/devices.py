"""Devices: provisioning (the token is shown once; only its sha256 is kept), device token checks,
removal, and the summaries the device list shows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from detkit.errors import BadInput, Forbidden, Unauthorized
from hub.db import Database
from hub.fleet.broker_files import HUB_USER
from hub.store import fleet as fleet_store
from hub.store import fleet_deployments as dep_store

TOKEN_PREFIX = "ymird_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def mosquitto_hash(password: str) -> str:
    """A Mosquitto 2 password-file hash (``$7$``: PBKDF2-SHA512, 101 rounds, 12-byte salt)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def provision(database: Database, device_id: str, name: str = "", tags: list[str] | None = None,
              project_id: int | None = None) -> dict:
    """Create a device; the returned dict holds its ``token`` (the only time it is shown). The hub keeps
    its sha256 (HTTP) and a salted Mosquitto hash (MQTT passwords with ``YMIR_BROKER_AUTH``).
    The hub's own broker user name is no device id: such a device would get the hub's ACL."""
    if device_id == HUB_USER:
        raise BadInput(f"device id {device_id!r} is reserved for the hub's broker user")
    token = new_token()
    device = fleet_store.create_device(database, device_id, name, tags or [], token, project_id,
                                       mosquitto_hash(token))
    return {**device, "token": token}


def rotate_token(database: Database, device_id: str) -> dict:
    token = new_token()
    fleet_store.set_token(database, device_id, token, mosquitto_hash(token))
    return {"id": device_id, "token": token}


def authenticate(database: Database, header: str, device_id: str | None = None) -> dict:
    """The device owning the Bearer token in ``header`` (and, when given, it must be ``device_id``)."""
    if not header.lower().startswith("bearer "):
        raise Unauthorized("device token required: send 'Authorization: Bearer <device token>'")
    device = fleet_store.device_for_token(database, header[7:].strip())
    if device is None:
        raise Unauthorized("invalid device token")
    # bytes: compare_digest raises TypeError on a str with non-ASCII characters (a hostile URL)
    if device_id is not None and not hmac.compare_digest(device["id"].encode(), device_id.encode()):
        raise Forbidden(f"this token belongs to device {device['id']!r}, not {device_id!r}")
    return device


def summary(database: Database, device: dict) -> dict:
    """A device with what the list shows: active algorithms, revision, p95 latency, outbox depth."""
    return summaries(database, [device])[0]


def summaries(database: Database, devices: list[dict]) -> list[dict]:
    """:func:`summary` of many devices with two queries in all (a fleet page lists hundreds)."""
    ids = [d["id"] for d in devices]
    reported_by, slots_by = fleet_store.reported_for(database, ids), fleet_store.slots_for(database, ids)
    return [_summary(d, {r["name"]: r for r in reported_by[d["id"]]}, slots_by[d["id"]]) for d in devices]


def _summary(device: dict, reported: dict[str, dict], slots: list[dict]) -> dict:
    algos = []
    for s in slots:
        rep = reported.get(s["name"], {})
        algos.append({"name": s["name"], "revision": s["entry"]["revision"], "enabled": s["entry"].get("enabled", True),
                      "algorithm_id": s["algorithm_id"], "deployment_id": s["deployment_id"],
                      "state": rep.get("state", "unknown") if rep.get("revision") == s["entry"]["revision"]
                      else ("pending" if rep else "unknown"),
                      "reported_revision": rep.get("revision"), "reason": rep.get("reason", "")})
    m = device["metrics"]
    return {**device, "algorithms": algos, "p95_ms": m.get("p95_ms"), "outbox_depth": m.get("outbox_depth"),
            "reported": list(reported.values())}


def detail(database: Database, device_id: str) -> dict:
    device = summary(database, fleet_store.get_device(database, device_id))
    device["history"] = dep_store.device_history(database, device_id)
    device["commands"] = fleet_store.commands(database, device_id, 20)
    return device


def remove(database: Database, device_id: str, fleet=None) -> None:
    """Delete the device and its rows; with a running fleet its retained topics are cleared too."""
    fleet_store.get_device(database, device_id)
    if fleet is not None:
        fleet.forget_device(device_id)
    fleet_store.delete_device(database, device_id)
