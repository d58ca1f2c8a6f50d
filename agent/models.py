"""The models an agent serves right now: name -> loaded :class:`detkit.runtime.Detector`.

The HTTP server reads from a :class:`ModelRegistry`; the model store swaps entries in it only after
a new model passed its health check, so a request always meets either the old or the new model.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detkit.errors import NotFound, Unavailable

log = logging.getLogger(__name__)


def load_detector(path: str | Path, backend: str | None = None, **config: Any):
    """Load a package folder/zip or a model file with ``detkit.runtime.load`` (imported lazily);
    ``backend`` None takes the package's backend, or the one opening the file type."""
    from detkit.runtime import load

    return load(path, backend=backend, **config)


@dataclass
class ServedModel:
    """A loaded model and how it is served."""

    name: str
    detector: Any  # detkit.runtime.Detector
    version: str = "1"
    sha256: str = ""
    revision: int = 0
    settings: dict = field(default_factory=dict)
    enabled: bool = True

    @property
    def is_detector(self) -> bool:
        """True when the model carries a detector spec, so ``/v1/detect`` can pre/post-process."""
        return getattr(self.detector, "spec", None) is not None

    def metadata(self) -> dict:
        """OIP model metadata (``GET /v2/models/{name}``)."""
        info = getattr(self.detector, "info", {}) or {}
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": f"{info.get('backend', 'onnxruntime')}_onnx",
            "inputs": self.detector.inputs,
            "outputs": self.detector.outputs,
        }

    def describe(self) -> dict:
        """What ``GET /v1/models`` lists."""
        info = dict(getattr(self.detector, "info", {}) or {})
        return {
            "name": self.name, "version": self.version, "sha256": self.sha256, "revision": self.revision,
            "enabled": self.enabled, "detector": self.is_detector, "settings": self.settings,
            "backend": info.get("backend"), "classes": info.get("classes", []),
            "input_shape": info.get("input_shape"), "precision": info.get("precision"),
        }


class ModelRegistry:
    """Thread-safe name -> :class:`ServedModel`; replacing an entry closes the old detector later."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._models: dict[str, ServedModel] = {}
        self.ready = False  # set once the agent restored its models at start-up

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def all(self) -> list[ServedModel]:
        with self._lock:
            return [self._models[k] for k in sorted(self._models)]

    def find(self, name: str) -> ServedModel | None:
        with self._lock:
            return self._models.get(name)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model, or :class:`NotFound` (also for a version that is not the served one)."""
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise NotFound(f"unknown model {name!r}; served: {', '.join(self.names()) or 'none'}")
        if version not in (None, "", model.version):
            raise NotFound(f"model {name!r} has no version {version!r}; served version is {model.version!r}")
        return model

    def ready_model(self, name: str, version: str | None = None) -> ServedModel:
        """The model if it is enabled, else :class:`Unavailable` (HTTP 503)."""
        model = self.get(name, version)
        if not model.enabled:
            raise Unavailable(f"model {name!r} is disabled on this device")
        return model

    def put(self, model: ServedModel) -> ServedModel | None:
        """Serve ``model`` under its name; returns the replaced entry (the caller closes it)."""
        with self._lock:
            old = self._models.get(model.name)
            self._models[model.name] = model
        log.info("serving %s version %s (%s)", model.name, model.version, model.sha256[:12])
        return old

    def remove(self, name: str) -> ServedModel | None:
        with self._lock:
            return self._models.pop(name, None)

    def set_enabled(self, name: str, enabled: bool) -> None:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"unknown model {name!r}")
            model.enabled = enabled

    def default(self) -> ServedModel:
        """The only served model (for ``/v1/detect`` without ``model``), else a clear error."""
        with self._lock:
            models = list(self._models.values())
        detectors = [m for m in models if m.is_detector]
        if len(detectors) == 1:
            return detectors[0]
        if not detectors:
            raise Unavailable("no detector model is served")
        raise NotFound(f"several models are served ({', '.join(sorted(m.name for m in detectors))}); name one with 'model'")
