"""Build the runner a hub process (server, worker or CLI) uses, from validated settings."""

from __future__ import annotations

import importlib
from pathlib import Path

from hub.jobs.kinds import JobContext
from hub.jobs.runner import Runner

#: modules that register job kinds (``hub.jobs.kinds.register``) when imported
KIND_MODULES = ["hub.training", "hub.mining", "hub.conversions", "hub.diagnosis", "hub.analysis", "hub.datasets.background"]


def load_kinds() -> None:
    for name in KIND_MODULES:
        importlib.import_module(name)


def job_context(settings, database) -> JobContext:
    return JobContext(database=database, workspace=Path(settings.home), settings=settings)


def backend_key(settings) -> str:
    return getattr(settings, "job_backend", "local")


def backend_config(settings) -> dict:
    """What the configured job backend is made with (docker: the engine URL; kubernetes: YMIR_K8S_* and the
    workspace the claim holds)."""
    if backend_key(settings) == "kubernetes":
        return {**getattr(settings, "k8s", {}), "workspace": str(settings.home)}
    return {"docker_host": getattr(settings, "docker_host", None)}


def build_runner(settings, database, *, only_jobs: set[str] | None = None, poll_interval: float = 0.5) -> Runner:
    """A runner with the configured backend (``local`` by default) and concurrency."""
    load_kinds()
    return Runner(
        job_context(settings, database),
        backend_key=backend_key(settings),
        backend_config=backend_config(settings),
        concurrency=getattr(settings, "job_concurrency", 1),
        poll_interval=poll_interval,
        only_jobs=only_jobs,
    )
