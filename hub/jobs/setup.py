"""Build the runner a hub process (server, worker or CLI) uses, from validated settings."""

from __future__ import annotations

from pathlib import Path

from hub.jobs.kinds import JobContext
from hub.jobs.runner import Runner


def job_context(settings, database) -> JobContext:
    return JobContext(database=database, workspace=Path(settings.home), settings=settings)


def backend_key(settings) -> str:
    return getattr(settings, "job_backend", "local")


def build_runner(settings, database, *, only_jobs: set[str] | None = None, poll_interval: float = 0.5) -> Runner:
    """A runner with the configured backend (``local`` by default) and concurrency."""
    import hub.training  # noqa: F401  (registers the train / infer / mine kinds)

    return Runner(
        job_context(settings, database),
        backend_key=backend_key(settings),
        backend_config={"docker_host": getattr(settings, "docker_host", None)},
        concurrency=getattr(settings, "job_concurrency", 1),
        poll_interval=poll_interval,
        only_jobs=only_jobs,
    )
