"""The docker images built for real (docs/images.md): scripts/build_images.sh makes the agent, Mosquitto and hub
images from the locally debootstrapped base (no registry), then the three run as a stack on a private dockerd:
the hub serves its pages, a device provisioned with the hub's CLI inside its container connects from the agent
container over the Mosquitto container and shows online; the agent image carries no torch, the hub's does."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.docker]
PREFIX = "ymir-images-test"


@pytest.fixture(scope="module")
def docker_env() -> dict[str, str]:
    host = os.environ.get("YMIR_TEST_DOCKER_HOST")
    if not host:
        pytest.skip("no docker engine: scripts/test.sh starts one when dockerd is installed and we are root")
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed: cannot make a python base image without a registry")
    return dict(os.environ, DOCKER_HOST=host)


def _docker(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert not check or proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-1500:]}"
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, probe, timeout: float = 90):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
        except (requests.RequestException, json.JSONDecodeError, AssertionError) as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout:.0f} s ({last})")


@pytest.fixture(scope="module")
def images(docker_env) -> list[str]:
    proc = subprocess.run([str(ROOT / "scripts/build_images.sh"), "agent", "mosquitto", "hub"], env=docker_env,
                          cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


@pytest.fixture
def stack(docker_env, tmp_path):
    names: list[str] = []

    def run(name: str, *args: str) -> str:
        full = f"{PREFIX}-{name}"
        _docker(docker_env, "rm", "-f", full, check=False)
        _docker(docker_env, "run", "-d", "--name", full, "--network", "host", *args)
        names.append(full)
        return full

    yield run
    for name in names:
        logs = _docker(docker_env, "logs", "--tail", "30", name, check=False)
        print(f"--- {name}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")
        _docker(docker_env, "rm", "-f", name, check=False)


def test_the_images_build_and_run_as_a_stack(images, stack, docker_env, tmp_path):
    assert images == ["ymir-edge/agent:latest", "ymir-edge/mosquitto:2", "ymir-edge/hub:latest"]

    mqtt, hub_port, agent_port = _free_port(), _free_port(), _free_port()
    conf = tmp_path / "mosquitto.conf"
    # `user root`: Debian's mosquitto checks each client with libwrap, which under gVisor (runsc, where this
    # suite runs) denies every connection once the broker has dropped to the mosquitto user ("denied access
    # by tcpd"); docs/images.md says the same for such hosts
    conf.write_text(f"listener {mqtt} 127.0.0.1\nallow_anonymous true\nuser root\n")
    conf.chmod(0o644)
    stack("mosquitto", "-v", f"{conf}:/mosquitto/config/mosquitto.conf:ro", "ymir-edge/mosquitto:2")

    hub = stack("hub", "-e", f"YMIR_MQTT_URL=mqtt://127.0.0.1:{mqtt}", "-e", "YMIR_ADMIN_PASSWORD=images-test-pw",
                "-e", f"YMIR_PUBLIC_URL=http://127.0.0.1:{hub_port}", "ymir-edge/hub:latest",
                "ymir-hub", "serve", "--host", "127.0.0.1", "--port", str(hub_port))
    login = _wait("the hub's login page", lambda: requests.get(f"http://127.0.0.1:{hub_port}/login", timeout=5),
                  timeout=180)
    assert login.status_code == 200 and "password" in login.text.lower()
    session = requests.Session()
    page = session.post(f"http://127.0.0.1:{hub_port}/login", timeout=10, data={
        "username": "admin", "password": "images-test-pw",
        "csrf_token": _csrf(session.get(f"http://127.0.0.1:{hub_port}/login", timeout=10).text)})
    assert page.status_code == 200 and "/login" not in page.url, page.url  # the entrypoint made the admin

    device = json.loads(_docker(docker_env, "exec", hub, "ymir-hub", "device", "add", "cam1", "--json").stdout)
    stack("agent", "-e", "YMIR_AGENT_DEVICE_ID=cam1", "-e", f"YMIR_AGENT_DEVICE_TOKEN={device['token']}",
          "-e", f"YMIR_AGENT_HUB_URL=http://127.0.0.1:{hub_port}", "-e", f"YMIR_AGENT_MQTT_URL=mqtt://127.0.0.1:{mqtt}",
          "-e", f"YMIR_AGENT_HTTP_BIND=127.0.0.1:{agent_port}", "-e", f"YMIR_AGENT_HUB_PUBLIC_KEY={device['hub_public_key']}",
          "ymir-edge/agent:latest")
    _wait("the agent's HTTP server", lambda: requests.get(f"http://127.0.0.1:{agent_port}/v2/health/live",
                                                          timeout=5).ok)

    def online():
        shown = json.loads(_docker(docker_env, "exec", hub, "ymir-hub", "device", "show", "cam1", "--json").stdout)
        return shown if shown["online"] else None

    assert _wait("device cam1 online at the hub", online)["id"] == "cam1"

    # the agent image is the slim one: onnxruntime, no torch; the hub's trains on its local job backend
    # (asked inside the running containers: on vfs every new container of the hub image copies 1.4 GB)
    probe = "import importlib.util as u; print(u.find_spec('torch') is not None, u.find_spec('onnxruntime') is not None)"
    assert _docker(docker_env, "exec", f"{PREFIX}-agent", "python3", "-c", probe).stdout.split() == ["False", "True"]
    assert _docker(docker_env, "exec", hub, "python3", "-c", probe).stdout.split() == ["True", "True"]


def _csrf(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert m, "no csrf_token in the login form"
    return m.group(1)
