"""Reading an executor image's ``/img-man`` (manifest + training/mining/infer templates) from docker."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import yaml

from detkit.errors import BadInput, Unavailable

TEMPLATE_FILES = {"training": "training-template.yaml", "mining": "mining-template.yaml",
                  "infer": "infer-template.yaml"}


def parse_img_man_tar(data: bytes) -> tuple[dict, dict]:
    """``(manifest, templates)`` from a tar of the ``/img-man`` folder (as ``get_archive`` returns it)."""
    manifest, templates = {}, {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            name = Path(m.name).name
            try:
                doc = yaml.safe_load(tar.extractfile(m).read()) or {}
            except yaml.YAMLError as exc:
                raise BadInput(f"/img-man/{name}: malformed YAML ({exc})") from None
            if name == "manifest.yaml":
                manifest = doc
            for kind, fname in TEMPLATE_FILES.items():
                if name == fname:
                    templates[kind] = doc
    return manifest, templates


def read_img_man(settings, docker_ref: str) -> tuple[dict, dict]:
    """Create (not start) a container of ``docker_ref`` and read its ``/img-man``; ({}, {}) if it has none."""
    try:
        import docker
    except ImportError as exc:
        raise Unavailable("the docker SDK is missing: pip install 'ymir-edge[hub]'") from exc
    host = getattr(settings, "docker_host", None)
    try:
        client = docker.DockerClient(base_url=host) if host else docker.from_env()
        client.images.get(docker_ref)
    except docker.errors.ImageNotFound:
        raise BadInput(f"docker image {docker_ref!r} is not present on the engine") from None
    except docker.errors.DockerException as exc:
        raise Unavailable(f"docker engine unreachable: {exc}") from exc
    container = client.containers.create(docker_ref, command=["/bin/true"])
    try:
        stream, _ = container.get_archive("/img-man")
        return parse_img_man_tar(b"".join(stream))
    except docker.errors.NotFound:
        return {}, {}
    finally:
        container.remove(force=True)
        client.close()
