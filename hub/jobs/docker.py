"""DockerBackend: the executor image run through the docker SDK.

``/in`` is mounted read-only and ``/out`` read-write at exactly those paths; the image's own
command runs; a GPU count becomes a ``DeviceRequest``; the container is named after the job so a
restarted hub finds it again. Works against any engine the SDK can reach (``docker_host``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from detkit.errors import BadInput, Unavailable
from hub.jobs.base import RunRequest, RunStatus


class DockerBackend:
    key = "docker"

    def __init__(self, config: dict):
        import docker  # heavy SDK: imported only when this backend is chosen

        self._docker = docker
        host = config.get("docker_host") or None
        try:
            self.client = docker.DockerClient(base_url=host) if host else docker.from_env()
            self.client.ping()
        except docker.errors.DockerException as exc:
            raise Unavailable(f"docker engine unreachable at {host or 'the default socket'}: {exc}") from exc
        self.network = config.get("network", "none")

    def roots(self, req: RunRequest) -> tuple[str, str]:
        return "/in", "/out"

    def submit(self, req: RunRequest) -> str:
        if not req.image.docker_ref:
            raise BadInput(f"image {req.image.name!r} has no docker reference")
        try:
            self.client.images.get(req.image.docker_ref)
        except self._docker.errors.ImageNotFound:
            raise BadInput(f"docker image {req.image.docker_ref!r} is not present on the engine") from None
        name = f"ymir-job-{req.job_id}"
        with contextlib.suppress(self._docker.errors.NotFound):  # a leftover of an earlier attempt
            self.client.containers.get(name).remove(force=True)
        device_requests = None
        if req.gpu_count:
            device_requests = [self._docker.types.DeviceRequest(count=req.gpu_count, capabilities=[["gpu"]])]
        container = self.client.containers.run(
            req.image.docker_ref,
            detach=True,
            name=name,
            volumes={str(req.in_dir): {"bind": "/in", "mode": "ro"}, str(req.out_dir): {"bind": "/out", "mode": "rw"}},
            shm_size=req.shm_size,
            device_requests=device_requests,
            environment=req.env,
            network_mode=self.network,
            labels={"ymir.job": req.job_id},
        )
        return f"container:{container.id}"

    def _container(self, handle: str):
        try:
            return self.client.containers.get(handle.split(":", 1)[1])
        except self._docker.errors.NotFound:
            return None

    def poll(self, handle: str) -> RunStatus:
        c = self._container(handle)
        if c is None:
            return RunStatus(False, None, "the container is gone")
        c.reload()
        state = c.attrs.get("State", {})
        if state.get("Running") or c.status in ("created", "running", "restarting"):
            return RunStatus(True)
        detail = "out of memory" if state.get("OOMKilled") else state.get("Error", "")
        return RunStatus(False, int(state.get("ExitCode", -1)), detail)

    def cancel(self, handle: str) -> None:
        c = self._container(handle)
        if c is not None:
            with contextlib.suppress(self._docker.errors.APIError):
                c.kill()

    def logs(self, handle: str, log_path: Path) -> str:
        c = self._container(handle)
        if c is None:
            try:
                return log_path.read_text(errors="replace")
            except FileNotFoundError:
                return ""
        return c.logs(stdout=True, stderr=True).decode(errors="replace")

    def cleanup(self, handle: str, log_path: Path) -> None:
        c = self._container(handle)
        if c is None:
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_bytes(c.logs(stdout=True, stderr=True))
        with contextlib.suppress(self._docker.errors.APIError):
            c.remove(force=True)


def make(config: dict) -> DockerBackend:
    return DockerBackend(config)
