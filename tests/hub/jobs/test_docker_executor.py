"""The built-in executor as a docker image, trained through DockerBackend (real dockerd, real image)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hub_helpers import shapes_hub

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def executor_image(docker_host):
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed: cannot make a python base image without a registry")
    env = dict(os.environ, DOCKER_HOST=docker_host)
    proc = subprocess.run([str(ROOT / "scripts/build_executor_image.sh")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_built_in_executor_trains_under_docker(tmp_path, docker_host, executor_image):
    assert executor_image == "ymir-edge/executor:latest"
    run = shapes_hub(tmp_path, sets=(("train", 12, 7), ("val", 4, 8)),
                     env={"YMIR_JOB_BACKEND": "docker", "YMIR_DOCKER_HOST": docker_host})
    images = json.loads(run("image", "list", "--json").stdout)
    assert any(i["docker_ref"] == executor_image for i in images)
    # registering an image reads its /img-man manifest and templates from the image itself
    added = json.loads(run("image", "add", "from-docker", "--docker", executor_image, "--json").stdout)
    assert added["manifest"]["object_type"] == 2
    assert set(added["templates"]) == {"training", "mining", "infer"} and added["templates"]["training"]["epochs"]
    out = json.loads(run("train", "--project", "shapes", "--train", "1", "--val", "2", "--set", "epochs=1",
                         "--set", "input_size=128", "--wait", "--json").stdout)
    assert out["best_stage"] in out["stages"] and "mAP50" in out["metrics"]
    job = json.loads(run("job", "show", out["job_id"], "--json").stdout)
    assert job["backend"] == "docker" and job["handle"].startswith("container:")
    # the container wrote only into /out: /in was mounted read-only
    assert (tmp_path / "jobs" / out["job_id"] / "in" / "env.yaml").read_text().count("/in/") > 3
