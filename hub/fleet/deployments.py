"""Deployments: an algorithm (package + backend + settings) to one device, a tag or all devices.

Creating or rolling back a deployment only writes rows; the fleet service's rollout loop (in the
hub server, :mod:`hub.fleet.rollout`) sends desired states and watches the batches. So the API, the
pages and the CLI (which has no broker connection) all deploy the same way, and a repeated
request changes nothing: a running deployment with the same parameters is returned as it is, and
rolling back a rolled-back deployment is a no-op.
"""

from __future__ import annotations

import re

from agent import protocol
from detkit.errors import BadInput, NotFound
from hub.db import Database
from hub.store import fleet as fleet_store
from hub.store import fleet_algorithms as algo_store
from hub.store import fleet_deployments as dep_store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULTS = {"batch_percent": 100.0, "success_threshold": 1.0, "max_failures": 1}


def parse_target(target: str) -> tuple[str, str]:
    """``device:ID`` | ``tag:NAME`` | ``all`` -> ``(kind, value)``."""
    if target == "all":
        return "all", ""
    kind, _, value = (target or "").partition(":")
    if kind not in ("device", "tag") or not value:
        raise BadInput(f"target {target!r}: use device:ID, tag:NAME or all")
    return kind, value


def resolve_devices(database: Database, kind: str, value: str) -> list[str]:
    if kind == "device":
        fleet_store.get_device(database, value)  # NotFound names it
        return [value]
    ids = fleet_store.device_ids(database, value if kind == "tag" else None)
    if not ids:
        raise BadInput(f"no devices {'tagged ' + repr(value) if kind == 'tag' else 'provisioned'} to deploy to")
    return ids


def check_settings(settings: dict) -> dict:
    """Deployment settings as the agent will check them (ranges from :mod:`agent.protocol`)."""
    if not isinstance(settings, dict):
        raise BadInput("settings: expected an object like {\"conf\": 0.3}")
    try:
        protocol.Deployment.from_dict({"name": "x", "revision": 0, "sha256": "0" * 64, "url": "/", "size": 0,
                                       "settings": settings}, "settings")
    except protocol.ProtocolError as exc:
        raise BadInput(exc.message) from None
    return settings


def deploy(database: Database, *, algorithm_id: int, target: str, backend: str | None = None,
           settings: dict | None = None, name: str | None = None, batch_percent: float | None = None,
           success_threshold: float | None = None, max_failures: int | None = None,
           user_id: int | None = None) -> tuple[dict, bool]:
    """Create a deployment (or find the identical running one); returns ``(deployment, created)``."""
    algo = algo_store.get_algorithm(database, algorithm_id)
    if algo["visibility"] not in ("public",) and user_id is not None and algo["owner_id"] not in (None, user_id):
        raise NotFound(f"algorithm {algorithm_id} not found")  # someone else's private algorithm
    name = name or algo["name"]
    if not _NAME.match(name):
        raise BadInput(f"deployment name {name!r}: 1-64 of letters, digits, '_', '.', '-'")
    backend = backend or algo["backend"]
    if backend not in protocol.BACKENDS:
        raise BadInput(f"backend {backend!r}: one of {', '.join(protocol.BACKENDS)}")
    settings = check_settings(settings or {})
    bp = float(DEFAULTS["batch_percent"] if batch_percent is None else batch_percent)
    st = float(DEFAULTS["success_threshold"] if success_threshold is None else success_threshold)
    mf = int(DEFAULTS["max_failures"] if max_failures is None else max_failures)
    if not 0 < bp <= 100:
        raise BadInput(f"batch_percent {bp}: within (0, 100]")
    if not 0 < st <= 1:
        raise BadInput(f"success_threshold {st}: a share within (0, 1]")
    if mf < 1:
        raise BadInput(f"max_failures {mf}: at least 1")
    kind, value = parse_target(target)
    same = dep_store.find_same_running(database, algorithm_id=algorithm_id, name=name, backend=backend,
                                       settings=settings, target_kind=kind, target_value=value)
    if same is not None:
        return dep_store.get_deployment(database, same), False
    devices = resolve_devices(database, kind, value)
    dep_id = dep_store.create_deployment(
        database, algorithm_id=algorithm_id, name=name, backend=backend, settings=settings, target_kind=kind,
        target_value=value, batch_percent=bp, success_threshold=st, max_failures=mf, device_ids=devices,
        created_by=user_id)
    return dep_store.get_deployment(database, dep_id), True


def rollback(database: Database, deployment_id: int, reason: str = "rolled back by a user") -> dict:
    """Ask for the whole deployment to be rolled back (idempotent); the rollout loop does it."""
    dep = dep_store.get_deployment(database, deployment_id)
    if dep["state"] in ("rolling_back", "rolled_back", "aborted"):
        return dep
    with database.write() as db:
        dep_store.set_deployment(db, deployment_id, state="rolling_back", message=reason)
    return dep_store.get_deployment(database, deployment_id)


def entry_for(algo: dict, dep: dict, revision: int, public_url: str | None) -> dict:
    """The desired-state entry the agent gets for ``dep`` (validated by the protocol)."""
    path = f"/api/v1/artifacts/{algo['sha256']}"
    entry = {"name": dep["name"], "revision": revision, "sha256": algo["sha256"],
             "url": f"{public_url}{path}" if public_url else path, "size": algo["size"], "backend": dep["backend"],
             "settings": dep["settings"], "enabled": True, "id": str(dep["id"])}
    return protocol.Deployment.from_dict(entry).to_dict()


def remove_algorithm(database: Database, device_id: str, name: str) -> None:
    """Take ``name`` off a device's desired state (the agent stops serving it)."""
    with database.write() as db:
        if fleet_store.get_slot(db, device_id, name) is None:
            raise NotFound(f"device {device_id!r} has no algorithm {name!r}")
        fleet_store.put_slot(db, device_id, name, None)
        fleet_store.next_revision(db, device_id)

