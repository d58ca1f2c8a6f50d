"""The labeling backends, one table: the built-in annotator (no-ops) and Label Studio (an external server).

A backend is an object with ``key`` and three calls, each given the workspace and the task dict:

* ``open(ws, task) -> dict`` — when the task is created; what it returns is kept as ``task["backend_state"]``
  (Label Studio: the project it made and its URL);
* ``sync(ws, task) -> dict`` — pull the labels made outside the hub (through ``tasks.apply_imported``) and
  report what came in; a failure raises before any saved label changes;
* ``close(ws, task)`` — when the task is finished or cancelled.

Label Studio's module (``hub.labeling.label_studio``, its ``BACKEND``) is imported only when a task uses it, so a
hub without it still runs and says what is missing.
"""

from __future__ import annotations

import importlib

from detkit.errors import BadInput


class BuiltinBackend:
    """The annotator built into the hub: labels are saved image by image as they are made, nothing to pull."""

    key = "builtin"

    def open(self, ws, task: dict) -> dict:
        return {}

    def sync(self, ws, task: dict) -> dict:
        return {"backend": self.key, "images": 0, "boxes": 0, "problems": [],
                "note": "the built-in annotator saves as you go: nothing to pull"}

    def close(self, ws, task: dict) -> None:
        return None


BUILTIN = BuiltinBackend()

# key -> the module holding ``BACKEND`` (None: built in)
BACKENDS: dict[str, str | None] = {"builtin": None, "label_studio": "hub.labeling.label_studio"}


def get_backend(key: str):
    """The backend object of ``key``; BadInput for an unknown key or one whose module cannot be loaded."""
    if key not in BACKENDS:
        raise BadInput(f"labeling backend {key!r}: choose one of {', '.join(BACKENDS)}")
    module = BACKENDS[key]
    if module is None:
        return BUILTIN
    try:
        return importlib.import_module(module).BACKEND
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"labeling backend {key} is not available in this hub ({module}: {exc}); "
                       "use the built-in annotator (backend builtin)") from None


def availability() -> dict[str, str | None]:
    """Each backend key with None when it can be used, else the reason it cannot."""
    out: dict[str, str | None] = {}
    for key in BACKENDS:
        try:
            get_backend(key)
            out[key] = None
        except BadInput as exc:
            out[key] = exc.message
    return out
