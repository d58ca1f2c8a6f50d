"""The fleet service a hub server runs: broker (given or embedded), MQTT client, ingest worker and
rollout loop. Built by :func:`start_fleet` from the settings, kept in ``app.extensions["fleet"]``,
stopped by the hub's closers. Without it (CLI, tests that don't need MQTT) deployments are still
written; the next hub server that runs the service sends them.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import uuid

from agent import protocol
from detkit.errors import Unavailable
from hub.fleet import rollout
from hub.fleet.broker import HubClient, start_embedded
from hub.fleet.broker_files import HUB_USER
from hub.fleet.devices import mosquitto_hash
from hub.fleet.ingest import Ingest
from hub.store import fleet as fleet_store

log = logging.getLogger(__name__)
LOOP_INTERVAL = 0.5
PRUNE_EVERY = 600.0
AUTH_SYNC_EVERY = 1.0


class FleetService:
    """Everything that talks to devices, with one ``close()``."""

    def __init__(self, settings, database):
        self.settings = settings
        self.database = database
        self.broker = None
        self.url = settings.mqtt_url
        self.prefix = settings.mqtt_prefix
        self.ingest = Ingest(database, on_reported=self.wake)
        self.client: HubClient | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop_errors = 0
        self._hub_entry: tuple[str, str] | None = None
        self._auth_sig: int | None = None

    def start(self) -> FleetService:
        creds: dict = {}
        if not self.url:
            self.broker = start_embedded(self.settings)
            if getattr(self.broker, "auth", False):
                hub_password = secrets.token_urlsafe(24)  # new each start: only this process knows it
                self._hub_entry = (HUB_USER, mosquitto_hash(hub_password))
                self._sync_auth()
                creds = {"username": HUB_USER, "password": hub_password}
            if self.broker.kind == "mosquitto":
                self.broker.start()
            self.url = self.broker.url
        home_id = hashlib.sha1(str(self.settings.home).encode()).hexdigest()[:10]
        self.ingest.start()
        self.client = HubClient(self.url, self.prefix, f"ymir-hub-{home_id}", self.ingest.put,
                                mqtt5=getattr(self.broker, "mqtt5", True), ca_file=self.settings.mqtt_ca_file,
                                **creds).start()
        self._thread = threading.Thread(target=self._loop, name="fleet-rollout", daemon=True)
        self._thread.start()
        log.info("fleet: broker %s (%s), prefix %s", self.url, self.broker.kind if self.broker else "external",
                 self.prefix)
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(15)
        if self.client:
            self.client.stop()
        self.ingest.stop()
        if self.broker:
            self.broker.stop()

    def _sync_auth(self) -> None:
        """Keep the embedded Mosquitto's password file in step with the devices (provisioned, given a
        new token or removed by the API, the pages or the CLI): rewritten and reloaded on change."""
        entries = [self._hub_entry, *fleet_store.mqtt_credentials(self.database)]
        sig = hash(tuple(entries))
        if sig != self._auth_sig:
            self.broker.set_passwords(entries)
            self._auth_sig = sig

    def wake(self) -> None:
        """Run the rollout loop now (reports arrived, or a deployment was created)."""
        self._wake.set()

    def _loop(self) -> None:
        last_prune = last_auth = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(LOOP_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                rollout.step(self.database, self._publish_desired if self.client.connected.is_set() else None,
                             timeout_s=self.settings.rollout_timeout_s, public_url=self.settings.public_url)
                if self._hub_entry and time.monotonic() - last_auth > AUTH_SYNC_EVERY:
                    last_auth = time.monotonic()
                    self._sync_auth()
                if time.monotonic() - last_prune > PRUNE_EVERY:
                    last_prune = time.monotonic()
                    fleet_store.prune_metrics(self.database)
            except Exception:  # the loop must outlive any one bad row
                self.loop_errors += 1
                log.exception("rollout step failed")

    def _publish_desired(self, device_id: str, payload: dict) -> bool:
        return self.client.publish(device_id, "desired", payload)

    # ---- for views ----------------------------------------------------------------------------
    def send_command(self, device_id: str, action: str, deployment: str = "", **args) -> str:
        """Publish a command (recorded first, so its result finds its row); returns its id."""
        cid = uuid.uuid4().hex[:16]
        payload = protocol.command(cid, action, deployment, **args)
        fleet_store.add_command(self.database, cid, device_id, action, deployment)
        if not self.client or not self.client.publish(device_id, "cmd", payload):
            with self.database.write() as db:
                fleet_store.write_command_results(db, [(0, "null", "not sent: broker unreachable", time.time(), cid,
                                                        device_id)])
            raise Unavailable("the broker did not take the command (is it reachable?)")
        return cid

    def forget_device(self, device_id: str) -> None:
        """Clear the device's retained topics (so a removed device gets no desired state)."""
        if self.client:
            self.client.publish(device_id, "desired", None, wait=2.0)
            self.client.publish(device_id, "status", None, wait=2.0)

    def info(self) -> dict:
        return {"broker": self.url, "embedded": self.broker.kind if self.broker else None, "prefix": self.prefix,
                "broker_auth": bool(self._hub_entry), "broker_tls": getattr(self.broker, "tls_url", None),
                "connected": bool(self.client and self.client.connected.is_set()),
                "ingest": dict(self.ingest.counters), "loop_errors": self.loop_errors}


def start_fleet(app, hub_state) -> FleetService | None:
    """Start the fleet service for ``app`` when the settings enable it (register its closer)."""
    settings = hub_state.settings
    if not settings.fleet_enabled:
        return None
    try:
        service = FleetService(settings, hub_state.database).start()
    except Unavailable as exc:  # no broker at all: the hub still serves everything else
        log.error("fleet disabled: %s", exc.message)
        app.extensions["fleet_error"] = exc.message
        return None
    app.extensions["fleet"] = service
    hub_state.closers.append(service.close)
    return service


def fleet_of(app) -> FleetService | None:
    return app.extensions.get("fleet")
