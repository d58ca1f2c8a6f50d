"""The rollout loop: moves deployments batch by batch and publishes desired states.

One :func:`step` (run by the fleet service every half second, and at once after reports arrive):

1. **send** every ``pending`` row of the current batch: the device's slot for the deployment name
   gets the new entry at the device's next desired revision; the entry it replaces is kept on the
   row (``previous``) for rollback;
2. **time out** rows stuck ``downloading``/``verifying``/``loading`` on an online device for longer
   than ``rollout_timeout_s``;
3. **judge**: failures (``failed`` + ``timed_out``) reaching ``max_failures`` abort the deployment;
   a batch whose healthy share reaches ``success_threshold`` opens the next batch, the last one
   completes the deployment;
4. **roll back** deployments being rolled back (aborted or asked by a user): each device already
   moved gets its previous entry back at a new revision (or loses the slot when it had none);
   rows never sent are cancelled;
5. **publish** every device whose desired revision changed: the retained ``desired`` document.

Offline devices keep their retained desired state at the broker and converge when they return.
Every action is idempotent: a step repeated after a crash finds the rows where it left them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agent import protocol
from hub.db import Database
from hub.fleet.deployments import entry_for
from hub.store import fleet as fleet_store
from hub.store import fleet_algorithms as algo_store
from hub.store import fleet_deployments as dep_store

log = logging.getLogger(__name__)
Publish = Callable[[str, dict], bool]  # publish(device_id, desired_payload) -> acknowledged


def _send(database: Database, dep: dict, algo: dict, device_id: str, public_url: str | None) -> None:
    with database.write() as db:
        slot = fleet_store.get_slot(db, device_id, dep["name"])
        for other in dep_store.in_flight_for(db, device_id, dep["name"], dep["id"]):
            dep_store.set_row(db, other, device_id, state="superseded", reason=f"superseded by deployment {dep['id']}")
        previous = None if slot is None else {"entry": slot["entry"], "algorithm_id": slot["algorithm_id"],
                                              "deployment_id": slot["deployment_id"]}
        revision = fleet_store.next_revision(db, device_id)
        fleet_store.put_slot(db, device_id, dep["name"], entry_for(algo, dep, revision, public_url), algo["id"],
                             dep["id"])
        dep_store.set_row(db, dep["id"], device_id, state="sent", revision=revision, previous=previous,
                          sent_at=time.time(), reason="")


def _restore(database: Database, dep: dict, row: dict) -> None:
    """Give one device back what it ran before ``dep`` (only if ``dep`` still owns the slot)."""
    with database.write() as db:
        slot = fleet_store.get_slot(db, row["device_id"], dep["name"])
        if slot is not None and slot["deployment_id"] == dep["id"]:
            revision = fleet_store.next_revision(db, row["device_id"])
            prev = row["previous"]
            if prev is None:
                fleet_store.put_slot(db, row["device_id"], dep["name"], None)
            else:
                entry = {**prev["entry"], "revision": revision}
                fleet_store.put_slot(db, row["device_id"], dep["name"], entry, prev["algorithm_id"],
                                     prev["deployment_id"])
        dep_store.set_row(db, dep["id"], row["device_id"], state="rolled_back",
                          reason=(row["reason"] + "; " if row["reason"] else "") + "rolled back")


def _advance(database: Database, dep: dict, public_url: str | None) -> None:
    rows = dep_store.rows(database, dep["id"])
    current = [r for r in rows if r["batch"] <= dep["current_batch"]]
    pending = [r for r in current if r["state"] == "pending"]
    if pending:
        algo = algo_store.get_algorithm(database, dep["algorithm_id"])
        for r in pending:
            _send(database, dep, algo, r["device_id"], public_url)
        return
    failures = sum(r["state"] in dep_store.FAILURE for r in rows)
    if failures >= dep["max_failures"]:
        why = "; ".join(f"{r['device_id']}: {r['state']} {r['reason']}".strip() for r in rows
                        if r["state"] in dep_store.FAILURE)
        log.warning("deployment %s aborted (%d failed): %s", dep["id"], failures, why)
        with database.write() as db:
            dep_store.set_deployment(db, dep["id"], state="rolling_back",
                                     message=f"aborted: {failures} device(s) failed ({why[:500]})")
        return
    batch = [r for r in rows if r["batch"] == dep["current_batch"] and r["state"] != "superseded"]
    healthy = sum(r["state"] in dep_store.SUCCESS for r in batch)
    if batch and healthy / len(batch) + 1e-9 < dep["success_threshold"]:
        return
    with database.write() as db:
        if dep["current_batch"] + 1 < dep["batches"]:
            dep_store.set_deployment(db, dep["id"], current_batch=dep["current_batch"] + 1,
                                     message=f"batch {dep['current_batch'] + 1} of {dep['batches']} healthy")
        else:
            dep_store.set_deployment(db, dep["id"], state="completed", finished_at=time.time(),
                                     message=f"all {dep['batches']} batch(es) reached the success threshold")


def _roll_back(database: Database, dep: dict) -> None:
    for r in dep_store.rows(database, dep["id"]):
        if r["state"] == "pending":
            with database.write() as db:
                dep_store.set_row(db, dep["id"], r["device_id"], state="cancelled", reason="never sent")
        elif r["state"] not in dep_store.FINAL:
            _restore(database, dep, r)
    final = "aborted" if dep["message"].startswith("aborted") else "rolled_back"
    with database.write() as db:
        dep_store.set_deployment(db, dep["id"], state=final, finished_at=time.time())
    log.info("deployment %s %s", dep["id"], final)


def _timeouts(database: Database, timeout_s: float) -> None:
    stuck = dep_store.timed_out(database, time.time() - timeout_s)
    if not stuck:
        return
    with database.write() as db:
        for dep_id, device_id in stuck:
            dep_store.set_row(db, dep_id, device_id, state="timed_out",
                              reason=f"no progress for {timeout_s:.0f}s")


def publish_pending(database: Database, publish: Publish) -> int:
    """Publish the desired document of every device whose revision changed; returns how many."""
    n = 0
    for device_id in fleet_store.unpublished(database):
        revision, entries = fleet_store.desired_document(database, device_id)
        if publish(device_id, protocol.desired(revision, entries)):
            fleet_store.mark_published(database, device_id, revision)
            n += 1
    return n


def step(database: Database, publish: Publish | None, *, timeout_s: float, public_url: str | None) -> None:
    """One pass of the loop (see the module doc); ``publish=None`` skips publishing (no broker)."""
    _timeouts(database, timeout_s)
    for dep in dep_store.list_deployments(database, states=("running",)):
        _advance(database, dep, public_url)
    for dep in dep_store.list_deployments(database, states=("rolling_back",)):
        _roll_back(database, dep)
    if publish is not None:
        publish_pending(database, publish)
