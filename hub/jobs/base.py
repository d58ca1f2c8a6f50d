"""The job backend protocol and its registry: a backend is a key + a config + one module.

A backend runs one executor with its ``/in`` and ``/out`` folders and knows nothing of the
database: the runner (``hub/jobs/runner.py``) owns job rows and calls these methods.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from detkit.errors import BadInput, Unavailable


@dataclass
class ExecutorImage:
    """An executor as registered in the hub: a docker reference and/or a local command."""

    name: str
    docker_ref: str = ""
    local_command: list[str] = field(default_factory=list)


@dataclass
class RunRequest:
    job_id: str
    image: ExecutorImage
    in_dir: Path
    out_dir: Path
    log_path: Path
    gpu_count: int = 0
    shm_size: str = "1g"
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunStatus:
    running: bool
    exit_code: int | None = None
    detail: str = ""


class JobBackend(Protocol):
    key: str

    def submit(self, req: RunRequest) -> str:
        """Start the executor; return a handle that survives a hub restart (pid, container id)."""

    def poll(self, handle: str) -> RunStatus:
        """Is it still running; if not, its exit code (None when it cannot be known)."""

    def cancel(self, handle: str) -> None:
        """Stop it and everything it started."""

    def logs(self, handle: str, log_path: Path) -> str:
        """The run's output so far (also kept in ``log_path``)."""

    def cleanup(self, handle: str, log_path: Path) -> None:
        """Release what the run held (container) after its logs are saved."""

    def roots(self, req: RunRequest) -> tuple[str, str]:
        """Where the executor sees its in and out folders."""


# key -> module with a ``make(config) -> JobBackend``; one row per backend.
BACKENDS: dict[str, str] = {
    "local": "hub.jobs.local",
    "docker": "hub.jobs.docker",
    "kubernetes": "hub.jobs.kubernetes",
}
#: the extra that installs a backend's client library
EXTRAS = {"docker": "hub", "kubernetes": "k8s"}


def make_backend(key: str, config: dict | None = None) -> JobBackend:
    if key not in BACKENDS:
        raise BadInput(f"unknown job backend {key!r}; known: {', '.join(BACKENDS)}")
    module = importlib.import_module(BACKENDS[key])
    try:
        return module.make(config or {})
    except ImportError as exc:  # the backend's client library is missing
        raise Unavailable(f"job backend {key!r} unavailable: {exc}; "
                          f"pip install 'ymir-edge[{EXTRAS.get(key, 'hub')}]'") from exc
