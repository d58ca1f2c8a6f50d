"""The docker images (docs/images.md): compose.yaml (hub + Mosquitto + one agent) refers to the images
scripts/build_images.sh makes, and its settings are ones the hub and the agent read."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENTRYPOINT = ROOT / "docker" / "hub-entrypoint.sh"
IMAGES = {"executor": "ymir-edge/executor:latest", "hub": "ymir-edge/hub:latest", "agent": "ymir-edge/agent:latest",
          "mosquitto": "ymir-edge/mosquitto:2"}
ADMIN_PASSWORD = "images-test-pw"


# --- compose.yaml -----------------------------------------------------------------------------------

def _interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} for the strings of a parsed compose file."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        got = env.get(name, "")
        if op == ":-":
            return got or arg
        if op == ":?" and not got:
            raise AssertionError(f"compose needs {name}: {arg}")
        return got

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, value)


def _compose_cli() -> list[str] | None:
    """`docker compose` (plugin) or `docker-compose` (Debian's 1.29), whichever answers; None without one
    (or with YMIR_TEST_NO_COMPOSE=1, to exercise the by-hand route where compose is installed)."""
    if os.environ.get("YMIR_TEST_NO_COMPOSE") == "1":
        return None
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            return cmd
    return None


def test_compose_file_refers_to_real_images_settings_and_volumes():
    env = {"YMIR_DEVICE_TOKEN": "ymird_test", "YMIR_ADMIN_PASSWORD": ADMIN_PASSWORD}
    cli = _compose_cli()
    if cli:  # the real parser first, where one is installed
        proc = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                              env=dict(os.environ, **env), cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
    raw = yaml.safe_load(COMPOSE.read_text())
    doc = _interpolate(raw, env)
    services = doc["services"]
    assert set(services) == {"hub", "mosquitto", "agent"}
    # defaults: the images scripts/build_images.sh makes; the broker is overridable for hosts without a registry
    assert services["hub"]["image"] == IMAGES["hub"] and services["agent"]["image"] == IMAGES["agent"]
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert "${YMIR_MOSQUITTO_IMAGE:-" in raw["services"]["mosquitto"]["image"]
    assert _interpolate(raw, {**env, "YMIR_MOSQUITTO_IMAGE": IMAGES["mosquitto"]})["services"]["mosquitto"][
        "image"] == IMAGES["mosquitto"]
    assert not any("build" in svc for svc in services.values())  # images come from scripts/build_images.sh
    script = (ROOT / "scripts" / "build_images.sh").read_text()
    assert all(ref in script for ref in IMAGES.values())

    # every named volume is declared, every bind mount exists
    declared = set(doc.get("volumes") or {})
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name}: bind mount {src} is missing"
            else:
                assert src in declared, f"{name}: volume {src} is not declared"

    # the hub's variables are hub settings (hub.config.ENV_VARS) or the entrypoint's, and they load
    from hub.config import ENV_VARS, load_settings

    hub_env = {k: str(v) for k, v in services["hub"]["environment"].items()}
    entry_vars = set(re.findall(r"\b(YMIR_\w+)", ENTRYPOINT.read_text())) - set(ENV_VARS)
    assert entry_vars == {"YMIR_ADMIN_PASSWORD", "YMIR_ADMIN_USER"}
    unknown = [k for k in hub_env if k not in ENV_VARS and k not in entry_vars]
    assert not unknown, f"compose.yaml sets variables the hub does not read: {unknown}"
    settings = load_settings(None, env={k: v for k, v in hub_env.items() if k in ENV_VARS and k != "YMIR_HOME"})
    assert urlparse(settings.mqtt_url).hostname == "mosquitto" and settings.job_backend == "local"
    assert hub_env["YMIR_HOME"] == "/data"

    # the agent's are YMIR_AGENT_<setting> for settings of agent.config, and they load
    from agent.config import ENV_PREFIX, SETTINGS
    from agent.config import load_settings as agent_settings

    agent_env = {k: str(v) for k, v in services["agent"]["environment"].items()}
    names = {s.name for s in SETTINGS}
    unknown = [k for k in agent_env if not k.startswith(ENV_PREFIX) or k[len(ENV_PREFIX):].lower() not in names]
    assert not unknown, f"compose.yaml sets variables the agent does not read: {unknown}"
    agent = agent_settings(None, env=agent_env)
    assert agent.device_id == "cam1" and agent.device_token == "ymird_test"
    assert urlparse(agent.mqtt_url).hostname == "mosquitto" and urlparse(agent.hub_url).hostname == "hub"
    # the ports line up with what the images listen on
    assert urlparse(agent.hub_url).port == 8080 and settings.public_url == "http://hub:8080"
    assert agent.http_bind.endswith(":8080") and services["agent"]["ports"][0].endswith(":8080")
    assert "8080" in (ROOT / "docker" / "hub.Dockerfile").read_text()
