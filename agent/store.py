"""The model store: slots on disk, an atomic switch, rollback, and restore after a crash.

Layout under ``store_dir``::

    downloads/{sha256}[.part]             artifacts (resumable; removed once unpacked)
    slots/{deployment}/r{rev:06d}-{sha12}/ one unpacked model each (package folder or model.onnx)
                       .../.slot.json      what it is; ``healthy_at`` once it passed the health check
    slots/{deployment}/current -> r...     symlink, replaced atomically (os.replace)
    state.json                             enabled flags, pinned revisions, report sequence, last report

A deployment goes ``downloading -> verifying -> loading -> healthy`` (or ``failed(reason)``).
The model being served keeps serving until the new one passed its health check; only then does
``current`` switch and the registry swap. The store keeps ``keep_slots`` previous healthy slots for
:meth:`ModelStore.rollback`. Killed at any point, :meth:`ModelStore.restore` serves what
``current`` points at, which is always a slot that was healthy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import AgentSettings
from agent.download import download, verify_sha256
from agent.health import check_health
from agent.models import ModelRegistry, ServedModel, load_detector
from agent.protocol import Deployment
from detkit.errors import BadModel, Conflict, NotFound, Unavailable, YmirError
from detkit.package import MANIFEST, unpack
from detkit.signing import verify_zip

log = logging.getLogger(__name__)
SLOT_META = ".slot.json"
Report = Callable[..., None]  # report(name, revision, state, reason="", **info)
_IN_FLIGHT = ("downloading", "verifying", "loading")  # reports of a deployment not finished yet


def _write_json(path: Path, data: dict) -> None:
    """Atomic write: temp file, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _model_file(slot: Path, backend: str = "onnxruntime") -> Path:
    """What the runtime opens in a slot: an engine built here for ``tensorrt``, else the package
    folder, else its bare model file."""
    if backend == "tensorrt" and (slot / "model.engine").is_file():
        return slot / "model.engine"  # its spec sits beside it (model.spec.json, by converters)
    if (slot / MANIFEST).is_file():
        return slot
    for name in ("model.engine", "model.onnx"):
        if (slot / name).is_file():
            return slot / name
    raise BadModel(f"{slot}: slot holds no model")


class ModelStore:
    """Slots, switch and rollback for every deployment; reports state changes through ``report``."""

    def __init__(self, settings: AgentSettings, registry: ModelRegistry, report: Report | None = None):
        self.settings = settings
        self.registry = registry
        self._send: Report = report or (lambda *a, **k: None)
        self.root = settings.store_path
        self.slots = self.root / "slots"
        self.downloads = self.root / "downloads"
        for p in (self.slots, self.downloads):
            p.mkdir(parents=True, exist_ok=True)
        self._state_path = self.root / "state.json"
        self._lock = threading.RLock()
        self.state = _read_json(self._state_path)
        self.state.setdefault("deployments", {})
        self.state.setdefault("seq", 0)

    # ---- persistent state -----------------------------------------------------------------
    def report(self, name: str, revision: int, state: str, reason: str = "", **info) -> None:
        """Send a state report, noting it first in ``state.json``: a restart compares the last report with
        what it serves and says so when they differ (killed between a switch and its ``healthy``)."""
        with self._lock:
            if self._dir(name).is_dir():  # not for a deployment just removed
                self._dep_state(name)["reported"] = [int(revision), state]
                self.save()
        self._send(name, revision, state, reason, **info)

    def save(self) -> None:
        with self._lock:
            _write_json(self._state_path, self.state)

    def next_seq(self) -> int:
        """The next report sequence number (persisted, so it keeps increasing across restarts)."""
        with self._lock:
            self.state["seq"] = int(self.state.get("seq", 0)) + 1
            self.save()
            return self.state["seq"]

    def _dep_state(self, name: str) -> dict:
        return self.state["deployments"].setdefault(name, {"enabled": True})

    # ---- slots ----------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.slots / name

    def current_slot(self, name: str) -> Path | None:
        link = self._dir(name) / "current"
        if not link.is_symlink():
            return None
        target = self._dir(name) / os.readlink(link)
        return target if target.is_dir() else None

    def slot_meta(self, slot: Path) -> dict:
        return _read_json(slot / SLOT_META)

    def current(self, name: str) -> dict | None:
        """Metadata of the slot being served for ``name`` (None when nothing healthy exists)."""
        slot = self.current_slot(name)
        return self.slot_meta(slot) if slot else None

    def healthy_slots(self, name: str) -> list[Path]:
        """Healthy slots of ``name``, newest activation first, the current one excluded."""
        cur = self.current_slot(name)
        base = self._dir(name)
        if not base.is_dir():
            return []
        found = []
        for p in base.iterdir():
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and p != cur:
                meta = self.slot_meta(p)
                if meta.get("healthy_at"):
                    found.append((meta["healthy_at"], p))
        return [p for _, p in sorted(found, reverse=True)]

    def _switch(self, name: str, slot: Path) -> None:
        link = self._dir(name) / "current"
        tmp = self._dir(name) / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(slot.name, tmp)
        os.replace(tmp, link)  # atomic: readers see the old or the new target, never nothing
        fd = os.open(self._dir(name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _prune(self, name: str) -> None:
        for old in self.healthy_slots(name)[self.settings.keep_slots:]:
            shutil.rmtree(old, ignore_errors=True)
            log.info("%s: pruned slot %s", name, old.name)

    def _clean(self, name: str) -> None:
        """Remove half-made slots (killed while unpacking or loading)."""
        base = self._dir(name)
        if not base.is_dir():
            return
        cur = self.current_slot(name)
        for p in base.iterdir():
            if p.is_symlink() or p == cur:
                continue
            if p.name.startswith(".") and p.name != ".current.tmp":
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_dir() and not self.slot_meta(p).get("healthy_at"):
                shutil.rmtree(p, ignore_errors=True)

    # ---- loading --------------------------------------------------------------------------
    def _load(self, slot: Path, meta: dict, check: bool = True) -> tuple[ServedModel, dict]:
        backend = meta.get("backend", "onnxruntime")
        det = load_detector(_model_file(slot, backend), backend=backend)
        health = check_health(det, self.settings.health_latency_ms) if check else {}
        model = ServedModel(
            name=meta["name"], detector=det, version=str(meta.get("revision", 0)), sha256=meta.get("sha256", ""),
            revision=int(meta.get("revision", 0)), settings=dict(meta.get("settings", {})),
            enabled=bool(self._dep_state(meta["name"]).get("enabled", True)),
        )
        return model, health

    def restore(self) -> list[str]:
        """Serve the current slot of every deployment (after a start or a crash); returns names.

        If a current slot no longer loads, the newest previous healthy slot is served instead and
        ``rolled_back`` reported.
        """
        restored = []
        for base in sorted(p for p in self.slots.iterdir() if p.is_dir()):
            name = base.name
            self._clean(name)
            candidates = [s for s in [self.current_slot(name)] if s] + self.healthy_slots(name)
            for i, slot in enumerate(candidates):
                meta = self.slot_meta(slot)
                try:
                    model, _ = self._load(slot, meta, check=False)
                except (YmirError, OSError, KeyError) as exc:
                    log.error("%s: slot %s does not load: %s", name, slot.name, exc)
                    continue
                if i:
                    self._switch(name, slot)
                    self.report(name, model.revision, "rolled_back", f"current slot did not load; serving {slot.name}")
                elif (self._dep_state(name).get("reported") or [0, ""])[1] in _IN_FLIGHT:
                    # the last word the hub heard was a step in flight: the agent died in a deployment
                    # (perhaps after its switch) and says what it serves now
                    self.report(name, model.revision, "healthy" if model.enabled else "disabled",
                                f"serving revision {model.revision} after a restart", sha256=model.sha256)
                self.registry.put(model)
                if meta.get("sha256"):  # killed after the switch, before the artifact went: it is unpacked
                    (self.downloads / meta["sha256"]).unlink(missing_ok=True)
                restored.append(name)
                break
        return restored

    # ---- deploy ---------------------------------------------------------------------------
    def is_current(self, dep: Deployment) -> bool:
        """True when ``dep`` needs no work: already served, older than served, or pinned/failed."""
        cur = self.current(dep.name)
        if cur and int(cur.get("revision", -1)) >= dep.revision:
            return True
        st = self.state["deployments"].get(dep.name, {})
        return int(st.get("pinned", -1)) >= dep.revision or int(st.get("failed", -1)) >= dep.revision

    def apply(self, dep: Deployment) -> bool:
        """Bring ``dep`` to ``healthy`` (True) or report ``failed(reason)`` and keep the old model (False).

        :class:`Unavailable` (hub or network down) is re-raised after reporting, so the caller can
        retry later; any other failure marks this revision failed for good.
        """
        with self._lock:
            if self.is_current(dep):
                return True
            try:
                self._apply(dep)
                return True
            except Unavailable as exc:
                self.report(dep.name, dep.revision, "failed", exc.message, sha256=dep.sha256, retry=True)
                raise
            except Exception as exc:  # whatever broke, the old model keeps serving and the hub hears why
                reason = exc.message if isinstance(exc, YmirError) else f"{type(exc).__name__}: {exc}"
                log.error("deployment %s revision %d failed: %s", dep.name, dep.revision, reason)
                self._dep_state(dep.name)["failed"] = dep.revision
                self.save()
                self.report(dep.name, dep.revision, "failed", reason, sha256=dep.sha256)
                return False

    def _apply(self, dep: Deployment) -> None:
        if dep.backend not in self.settings.allowed_backends:
            raise BadModel(f"backend {dep.backend!r} is not allowed on this device "
                           f"(allowed: {', '.join(self.settings.allowed_backends)})")
        info = {"sha256": dep.sha256, "backend": dep.backend}
        self.report(dep.name, dep.revision, "downloading", **info)
        url = dep.url if not dep.url.startswith("/") else self.settings.hub_url.rstrip("/") + dep.url
        artifact = download(url, self.downloads / dep.sha256, dep.sha256, dep.size,
                            token=self.settings.device_token, timeout=self.settings.download_timeout,
                            max_bytes=self.settings.download_max_bytes)
        self.report(dep.name, dep.revision, "verifying", **info)
        verify_sha256(artifact, dep.sha256)
        if self.settings.hub_public_key:  # a package the hub did not sign is refused; the old model keeps serving
            if not zipfile.is_zipfile(artifact):
                raise BadModel("signature: a bare model file carries no signature (deploy a package)")
            verify_zip(artifact, self.settings.hub_public_key)
        base = self._dir(dep.name)
        base.mkdir(parents=True, exist_ok=True)
        final = base / f"r{dep.revision:06d}-{dep.sha256[:12]}"
        tmp = base / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            if zipfile.is_zipfile(artifact):
                unpack(artifact, tmp)  # refuses unsafe archives and verifies every file's sha256
            else:
                shutil.copyfile(artifact, tmp / "model.onnx")
            meta = {"name": dep.name, "revision": dep.revision, "sha256": dep.sha256, "backend": dep.backend,
                    "settings": dep.settings, "deployment": dep.to_dict(), "unpacked_at": time.time()}
            _write_json(tmp / SLOT_META, meta)
            if final.exists() and final != self.current_slot(dep.name):
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.report(dep.name, dep.revision, "loading", **info)
        try:
            if dep.backend == "tensorrt":
                self._build_engine(final)
            model, health = self._load(final, meta)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        meta["healthy_at"] = time.time()
        meta["health"] = health
        _write_json(final / SLOT_META, meta)
        self._switch(dep.name, final)
        if self.settings.test_pause_after_switch:  # fault tests kill the agent here (docs/agent.md)
            log.warning("test_pause_after_switch: pausing %.1f s after the switch", self.settings.test_pause_after_switch)
            time.sleep(self.settings.test_pause_after_switch)
        st = self._dep_state(dep.name)
        st["enabled"] = dep.enabled
        st.pop("failed", None)
        self.save()
        model.enabled = dep.enabled
        self.registry.put(model)  # the old detector is released once in-flight requests finish
        artifact.unlink(missing_ok=True)
        self._prune(dep.name)
        self.report(dep.name, dep.revision, "healthy" if dep.enabled else "disabled", **info, health=health)

    def _build_engine(self, slot: Path) -> None:
        """Build a TensorRT engine from the slot's ONNX on this device (converters, imported lazily)."""
        try:
            from converters.tensorrt import to_tensorrt
        except ImportError as exc:
            raise BadModel(f"tensorrt engine build unavailable here: pip install 'ymir-edge[tensorrt]' ({exc})") from None
        src = _model_file(slot)
        onnx_path = src / _read_json(src / MANIFEST).get("model", "model.onnx") if src.is_dir() else src
        try:
            to_tensorrt(onnx_path, slot / "model.engine")
        except Unavailable as exc:
            raise BadModel(f"tensorrt engine build failed: {exc.message}") from None

    # ---- commands -------------------------------------------------------------------------
    def rollback(self, name: str, reason: str = "rollback command") -> dict:
        """Serve the newest previous healthy slot; the slot rolled back from is removed and its
        revision pinned (the same desired revision will not be re-applied)."""
        with self._lock:
            cur_slot = self.current_slot(name)
            if cur_slot is None:
                raise NotFound(f"deployment {name!r} has no model on this device")
            cur_meta = self.slot_meta(cur_slot)
            for slot in self.healthy_slots(name):
                meta = self.slot_meta(slot)
                try:
                    model, health = self._load(slot, meta)
                except YmirError as exc:
                    log.error("%s: rollback candidate %s unusable: %s", name, slot.name, exc)
                    continue
                self._switch(name, slot)
                st = self._dep_state(name)
                st["pinned"] = max(int(st.get("pinned", -1)), int(cur_meta.get("revision", -1)))
                self.save()
                self.registry.put(model)
                shutil.rmtree(cur_slot, ignore_errors=True)
                why = f"{reason}: from revision {cur_meta.get('revision')} to {meta.get('revision')}"
                self.report(name, model.revision, "rolled_back", why, sha256=model.sha256)
                return {"deployment": name, "revision": model.revision, "from_revision": cur_meta.get("revision")}
            raise Conflict(f"deployment {name!r} has no previous healthy model to roll back to")

    def set_enabled(self, name: str, enabled: bool) -> dict:
        with self._lock:
            model = self.registry.get(name)
            self.registry.set_enabled(name, enabled)
            self._dep_state(name)["enabled"] = enabled
            self.save()
            self.report(name, model.revision, "healthy" if enabled else "disabled",
                        "" if enabled else "disabled by command", sha256=model.sha256)
            return {"deployment": name, "enabled": enabled}

    def reload(self, name: str) -> dict:
        """Load the current slot again (the ``restart`` command for one deployment)."""
        with self._lock:
            slot = self.current_slot(name)
            if slot is None:
                raise NotFound(f"deployment {name!r} has no model on this device")
            model, health = self._load(slot, self.slot_meta(slot))
            self.registry.put(model)
            self.report(name, model.revision, "healthy" if model.enabled else "disabled", "reloaded",
                        sha256=model.sha256, health=health)
            return {"deployment": name, "revision": model.revision, "health": health}

    def remove(self, name: str) -> None:
        """Stop serving ``name`` and delete its slots (it left the desired state)."""
        with self._lock:
            model = self.registry.remove(name)
            shutil.rmtree(self._dir(name), ignore_errors=True)
            self.state["deployments"].pop(name, None)
            self.save()
            if model is not None:
                self.report(name, model.revision, "disabled", "removed from the desired state", sha256=model.sha256)

    def deployments(self) -> dict[str, Any]:
        """``{name: {revision, sha256, enabled, backend}}`` of what is served (for status messages)."""
        out = {}
        for m in self.registry.all():
            out[m.name] = {"revision": m.revision, "sha256": m.sha256, "enabled": m.enabled,
                           "backend": (getattr(m.detector, "info", {}) or {}).get("backend")}
        return out
