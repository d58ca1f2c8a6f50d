"""Fleet test helpers: a hub with its fleet connected to a real Mosquitto and served over HTTP
(waitress), real agent processes, model packages, and polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
ROOT = TESTS.parent
for p in (TESTS, TESTS / "agent", TESTS / "hub"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from agent_helpers import CLASSES, INPUT_SIZE, make_detector_onnx, make_package_zip, sample_jpeg  # noqa: E402,F401
from fixtures_mqtt import MOSQUITTO as MOSQUITTO_BIN  # noqa: E402,F401
from fixtures_mqtt import Collector, free_port, wait_port  # noqa: E402,F401

PREFIX = "ymir/v1"


def wait_until(pred, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``pred()`` until it returns something truthy; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def package(folder: Path, *, version: str = "1", pad_bytes: int = 0, scale: float = 1.0) -> Path:
    """A model package zip named ``tiny``; ``pad_bytes`` makes it that much bigger."""
    from detkit.manifest import ModelSpec
    from detkit.package import pack, write_package

    if not pad_bytes:
        return make_package_zip(folder / "pkg", folder / "tiny.zip", version=version, scale=scale)
    (folder / "pkg").mkdir(parents=True, exist_ok=True)
    make_detector_onnx(folder / "pkg" / "model.onnx", scale=scale, pad_bytes=pad_bytes)
    write_package(folder / "pkg", name="tiny", version=version,
                  spec=ModelSpec(class_names=CLASSES, input_size=INPUT_SIZE, stride=4), model="model.onnx")
    return pack(folder / "pkg", folder / "tiny.zip")


class HubServer:
    """The hub app served (threaded werkzeug server) on a free loopback port: agents download and
    upload over real HTTP."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.app = app
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubServer:
        self.thread.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_fleet_app(tmp_path: Path, broker_url: str | None, **overrides):
    """A fresh workspace (admin + classes + project ``edge``) and a hub app with its fleet on."""
    from hub import auth, create_app
    from hub.config import load_settings
    from hub.store import classes as class_store
    from hub.store import projects as project_store
    from hub.store import users as user_store
    from hub.store.workspace import Workspace

    settings = load_settings(tmp_path / "ws", env={}, testing=True, secret_key="test-secret", fleet_enabled=True,
                             mqtt_url=broker_url, run_jobs=False, **overrides)
    ws = Workspace.create(settings)
    auth.add_user(ws.database, "admin", "admin-pass-123", "admin")
    for c in CLASSES:
        class_store.add_class(ws.database, c)
    project_store.create_project(ws.database, "edge", targets=list(CLASSES))
    admin = user_store.get_user_by_name(ws.database, "admin")
    token = user_store.create_token(ws.database, admin["id"], "tests")
    ws.close()
    app = create_app(settings)
    return app, token


class Api:
    """requests against a served hub with the admin's token."""

    def __init__(self, base: str, token: str):
        import requests

        self.base = base
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw):
        return self.s.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, **kw):
        return self.s.post(self.base + path, timeout=60, **kw)

    def delete(self, path: str, **kw):
        return self.s.delete(self.base + path, timeout=30, **kw)

    def ok(self, resp, status: int | tuple = (200, 201, 202)):
        statuses = status if isinstance(status, tuple) else (status,)
        if resp.status_code not in statuses:
            raise AssertionError(f"{resp.request.method} {resp.url}: {resp.status_code} {resp.text[:500]}")
        return resp.json()


def write_agent_config(folder: Path, device_id: str, token: str, broker_url: str, hub_url: str, **extra) -> tuple[Path, int]:
    port = free_port()
    values = {"device_id": device_id, "mqtt_url": broker_url, "hub_url": hub_url, "device_token": token,
              "store_dir": str(folder / "store"), "http_bind": f"127.0.0.1:{port}", "mqtt_keepalive": 2,
              "desired_wait": 0.5, "uplink_interval": 0.2, "metrics_interval": 1.0, "mining_enabled": False,
              "download_timeout": 10.0, **extra}

    def fmt(v):
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return str(v)

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "agent.toml"
    cfg.write_text("".join(f"{k} = {fmt(v)}\n" for k, v in values.items()))
    return cfg, port


class AgentProc:
    """A real ``python -m agent run`` process."""

    def __init__(self, folder: Path, cfg: Path, port: int):
        env = {k: v for k, v in os.environ.items() if not k.startswith("YMIR_AGENT_")}
        env["OMP_NUM_THREADS"] = "1"
        self.log_path = folder / "agent.log"
        self.log = open(self.log_path, "wb")
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
