"""The agent process: restores models, serves HTTP, follows the desired state, runs commands,
publishes status/reported/metrics and drains the outbox.

Threads: paho's network thread only enqueues; one **worker** applies desired states and commands in
order (so a deployment and a rollback never race); an **uplink** thread drains the outbox and
closes mining windows; a **timer** thread publishes metrics and schedules retries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from agent import __version__, protocol
from agent.config import AgentSettings
from agent.metrics import ProcessProbe, Stats, hardware_summary
from agent.mining import Miner
from agent.models import ModelRegistry, ServedModel
from agent.protocol import Command, Desired, ProtocolError
from agent.store import ModelStore
from agent.uplink import Outbox, Uplink
from detkit.errors import Unavailable, YmirError

log = logging.getLogger(__name__)
RETRY_DELAY = 10.0  # seconds before re-trying a deployment whose hub was unreachable
LOG_TAIL_BYTES = 64 * 1024


def log_path(settings: AgentSettings) -> Path:
    """Where the agent's rotating log lives (``collect_logs`` reads it)."""
    return settings.store_path / "logs" / "agent.log"


def backend_summary() -> dict:
    """``{key: {"ok": bool, "reason": str}}`` for every runtime backend."""
    try:
        from detkit.runtime import available_backends

        return {k: {"ok": ok, "reason": reason} for k, (ok, reason) in available_backends().items()}
    except Exception as exc:  # a broken runtime install must still let the agent report it
        return {"onnxruntime": {"ok": False, "reason": f"runtime import failed: {exc}"}}


class Agent:
    """The device daemon; ``start()``, then ``wait()`` until stopped (``stop()`` or a ``restart`` command)."""

    def __init__(self, settings: AgentSettings):
        self.s = settings
        self.registry = ModelRegistry()
        self.stats = Stats()
        self.store = ModelStore(settings, self.registry, self._report)
        self.outbox = Outbox(settings.store_path / "outbox.sqlite3", settings.uplink_outbox_max,
                             settings.uplink_outbox_max_bytes)
        self.miner = Miner(settings, self.outbox)
        self.mqtt = None
        if settings.mqtt_url:
            from agent.mqtt import MqttSession

            self.mqtt = MqttSession(settings, self._on_message, self._on_connect,
                                    protocol.status(settings.device_id, "offline"))
        self.uplink = Uplink(self.outbox, settings.device_id, self._publish_acked if self.mqtt else None,
                             settings.hub_url, settings.device_token, settings.uplink_batch_size)
        self.http = None
        self.backends = backend_summary()
        self.probe = ProcessProbe()
        self.restart_requested = False
        self._events: deque[tuple] = deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._desired: Desired | None = None
        self._retry_at: float | None = None
        self._reports = 0
        self._last_reported: dict[str, dict] = {}
        self._cmd_results: OrderedDict[str, dict] = OrderedDict()

    # ---- life cycle -----------------------------------------------------------------------
    def start(self) -> Agent:
        restored = self.store.restore()
        log.info("agent %s for device %s: serving %s", __version__, self.s.device_id, restored or "nothing yet")
        self.registry.ready = True
        hp = self.s.http_host_port
        if hp:
            from agent.server import HttpServer, create_app

            app = create_app(self.registry, token=self.s.http_token, stats=self.stats, on_detect=self._on_detect,
                             mining_conf=self.s.mining_conf, status=self.status_info)
            self.http = HttpServer(app, hp[0], hp[1], self.s.http_threads).start()
            log.info("HTTP inference on %s", self.http.url)
        for name, target in (("agent-worker", self._worker), ("agent-uplink", self._uplink_loop),
                             ("agent-timer", self._timer_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if self.mqtt:
            self.mqtt.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the agent is told to stop; True if it stopped."""
        return self._stop.wait(timeout)

    def request_stop(self) -> None:
        """Ask the agent to stop (signal handlers); :meth:`wait` returns, then call :meth:`stop`."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()

    def stop(self) -> None:
        """Stop serving first (no new records), then the loops, then flush what can be flushed."""
        self.request_stop()
        if self.http:
            self.http.stop()
        for t in self._threads:
            t.join(timeout=10)
        self.miner.flush()
        try:
            self.uplink.drain()
        except Exception:
            log.exception("final outbox drain failed")
        if self.mqtt:
            self.mqtt.stop(protocol.status(self.s.device_id, "offline", reason="agent stopped"))
        self.outbox.close()

    # ---- events ---------------------------------------------------------------------------
    def _push(self, event: tuple, front: bool = False) -> None:
        with self._cv:
            (self._events.appendleft if front else self._events.append)(event)
            self._cv.notify()

    def _next(self, timeout: float) -> tuple | None:
        with self._cv:
            if not self._events:
                self._cv.wait(timeout)
            return self._events.popleft() if self._events else None

    def _on_connect(self) -> None:
        self._push(("connected",))

    def _on_message(self, kind: str, raw: bytes) -> None:
        """Network thread: parse (garbage is logged and dropped here) and enqueue."""
        try:
            if kind == "desired":
                if not raw:
                    log.info("the retained desired state was cleared; keeping what is deployed")
                    return
                self._push(("desired", Desired.parse(raw)))
            elif kind == "cmd":
                self._push(("cmd", raw))
            else:
                log.warning("ignoring a message on %s", kind)
        except ProtocolError as exc:
            log.warning("ignoring a bad %s payload: %s", kind, exc.message)

    def _worker(self) -> None:
        while not self._stop.is_set():
            ev = self._next(0.5)
            if ev is None:
                continue
            try:
                self._handle(ev)
            except Exception:  # one bad event must never stop the agent
                log.exception("handling %s failed", ev[0])

    def _handle(self, ev: tuple) -> None:
        handlers: dict[str, Callable] = {
            "connected": lambda: self._reconnected(),
            "desired": lambda: self._apply_desired(ev[1]),
            "cmd": lambda: self._command(ev[1]),
            "retry": lambda: self._desired and self._apply_desired(self._desired),
        }
        handlers[ev[0]]()

    def _reconnected(self) -> None:
        """Read the retained desired state (re-sent on subscribe) before reporting anything."""
        deadline = time.monotonic() + self.s.desired_wait
        held, desired = [], None
        while (left := deadline - time.monotonic()) > 0:
            ev = self._next(left)
            if ev is None:
                continue
            if ev[0] == "desired":
                desired = ev
                break
            held.append(ev)
        for ev in reversed(held):
            self._push(ev, front=True)
        self._publish_status()
        if desired is not None:
            self._handle(desired)

    # ---- desired state --------------------------------------------------------------------
    def _newer_desired_pending(self, revision: int) -> bool:
        with self._cv:
            return any(ev[0] == "desired" and ev[1].revision > revision for ev in self._events)

    def _apply_desired(self, desired: Desired) -> None:
        last = int(self.store.state.get("desired_revision", -1))
        if desired.revision < last:
            log.info("ignoring desired revision %d: older than %d", desired.revision, last)
            return
        self._desired = desired
        if desired.revision != last:
            self.store.state["desired_revision"] = desired.revision
            self.store.save()
        reports_before = self._reports
        for dep in desired.deployments:
            if self._newer_desired_pending(desired.revision):
                log.info("a newer desired state arrived; it wins")
                return
            try:
                self.store.apply(dep)
            except Unavailable as exc:
                log.warning("deployment %s: %s; retrying in %.0fs", dep.name, exc.message, RETRY_DELAY)
                self._retry_at = time.monotonic() + RETRY_DELAY
                continue
            served = self.registry.find(dep.name)
            if (desired.revision != last and served is not None and served.revision == dep.revision
                    and served.enabled != dep.enabled):  # a new document flips enabled at the same revision
                self.store.set_enabled(dep.name, dep.enabled)
        wanted = {d.name for d in desired.deployments}
        for name in self.registry.names():
            if name not in wanted:
                self.store.remove(name)
        if self._reports != reports_before:
            self._publish_status()

    # ---- commands -------------------------------------------------------------------------
    def _command(self, raw: bytes) -> None:
        try:
            cmd = Command.parse(raw)
        except ProtocolError as exc:
            log.warning("ignoring a bad command: %s", exc.message)
            cid = _command_id(raw)
            if cid is not None:
                self._publish("cmd/result", protocol.command_result(cid, False, error=exc.message))
            return
        if cmd.id in self._cmd_results:  # QoS 1 may deliver twice: answer again, do not act again
            self._publish("cmd/result", self._cmd_results[cmd.id])
            return
        handlers: dict[str, Callable[[Command], object]] = {
            "enable": lambda c: self.store.set_enabled(c.deployment, True),
            "disable": lambda c: self.store.set_enabled(c.deployment, False),
            "rollback": lambda c: self.store.rollback(c.deployment),
            "restart": self._restart,
            "collect_logs": self._collect_logs,
        }
        try:
            result = protocol.command_result(cmd.id, True, handlers[cmd.action](cmd))
        except YmirError as exc:
            result = protocol.command_result(cmd.id, False, error=exc.message)
        self._cmd_results[cmd.id] = result
        while len(self._cmd_results) > 256:
            self._cmd_results.popitem(last=False)
        self._publish("cmd/result", result, wait=2.0)
        if cmd.action in ("enable", "disable", "rollback"):
            self._publish_status()
        if self.restart_requested:
            self._stop.set()

    def _restart(self, cmd: Command) -> dict:
        if cmd.deployment:
            return self.store.reload(cmd.deployment)
        self.restart_requested = True  # the CLI re-executes the process once the agent stopped
        return {"restarting": True}

    def _collect_logs(self, cmd: Command) -> dict:
        lines = cmd.args.get("lines", 200)
        lines = lines if isinstance(lines, int) and not isinstance(lines, bool) and 0 < lines <= 5000 else 200
        path = log_path(self.s)
        if not path.exists():
            return {"lines": [], "path": str(path)}
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
        return {"lines": tail, "path": str(path)}

    # ---- publishing -----------------------------------------------------------------------
    def _publish(self, kind: str, payload: dict, wait: float | None = None) -> bool:
        return self.mqtt.publish(kind, payload, wait) if self.mqtt else False

    def _publish_acked(self, kind: str, payload: dict) -> bool:
        return self.mqtt.publish(kind, payload, wait=5.0) if self.mqtt else False

    def _report(self, name: str, revision: int, state: str, reason: str = "", **info) -> None:
        payload = protocol.reported(self.store.next_seq(), name, revision, state, reason,
                                    device_id=self.s.device_id, **info)
        self._reports += 1
        self._last_reported[name] = payload
        log.info("deployment %s revision %s: %s %s", name, revision, state, reason)
        self._publish("reported", payload)

    def status_info(self) -> dict:
        return {
            "agent_version": __version__,
            "backends": self.backends,
            "allowed_backends": list(self.s.allowed_backends),
            "hardware": hardware_summary(),
            "deployments": self.store.deployments(),
            "desired_revision": self.store.state.get("desired_revision"),
            "http": self.http.url if self.http else None,
            "mqtt_connected": bool(self.mqtt and self.mqtt.connected.is_set()),
        }

    def _publish_status(self) -> None:
        self._publish("status", protocol.status(self.s.device_id, "online", **self.status_info()))

    def metrics_payload(self) -> dict:
        return protocol.metrics(**self.stats.snapshot(), outbox=self.outbox.stats(), mining=dict(self.miner.counts),
                                **self.probe.sample(), models=self.registry.names())

    def _on_detect(self, model: ServedModel, image: bytes, payload: dict) -> None:
        self.miner.observe(model, image, payload)

    # ---- background loops -----------------------------------------------------------------
    def _uplink_loop(self) -> None:
        while not self._stop.wait(self.s.uplink_interval):
            try:
                self.miner.tick()
                self.uplink.drain()
            except Exception:
                log.exception("outbox drain failed")

    def _timer_loop(self) -> None:
        next_metrics = time.monotonic() + self.s.metrics_interval
        while not self._stop.wait(0.25):
            now = time.monotonic()
            if self._retry_at is not None and now >= self._retry_at:
                self._retry_at = None
                self._push(("retry",))
            if now >= next_metrics:
                next_metrics = now + self.s.metrics_interval
                try:
                    self._publish("metrics", self.metrics_payload())
                except Exception:
                    log.exception("metrics failed")


def _command_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    cid = data.get("id") if isinstance(data, dict) else None
    return str(cid) if isinstance(cid, str | int) and not isinstance(cid, bool) else None
