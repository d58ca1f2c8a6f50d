"""A real Label Studio server for the tests: started from the virtual environment ``scripts/setup.sh`` makes
(``.venvs/label-studio``, its own pins), on a free loopback port, with a fresh data folder and a legacy API token.

``start()`` returns a :class:`Server` or raises :class:`NotInstalled` with the reason (the tests skip with it).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
EXE = Path(os.environ.get("YMIR_TEST_LABEL_STUDIO", ROOT / ".venvs" / "label-studio" / "bin" / "label-studio"))
START_TIMEOUT_S = 240.0  # the first start runs Django's migrations: ~30 s here, more on a slow CI machine


class NotInstalled(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, **kw):
        r = requests.request(method, self.url + path, headers={"Authorization": f"Token {self.token}"},
                             timeout=30, **kw)
        assert r.ok, f"Label Studio {method} {path}: HTTP {r.status_code}: {r.text[:500]}"
        return r.json() if r.content else None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def start(data_dir: Path) -> Server:
    if not EXE.exists():
        raise NotInstalled(f"Label Studio is not installed at {EXE} (scripts/setup.sh makes .venvs/label-studio; "
                           "it needs PyPI)")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = secrets.token_hex(20)
    log = data_dir / "label-studio.log"
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_DB": "sqlite",
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
    env.pop("VIRTUAL_ENV", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(EXE), "start", "--no-browser", "--data-dir", str(data_dir), "-p", str(port),
             "--internal-host", "127.0.0.1", "--username", "labeler@example.com", "--password", secrets.token_hex(8),
             "--user-token", token, "--enable-legacy-api-token", "--log-level", "WARNING"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", token, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # installed but broken (e.g. a dependency's new major release): a failure, never a quiet skip
            raise RuntimeError(f"Label Studio exited with {process.returncode} at start: "
                               f"{log.read_text(errors='replace')[-1500:]}")
        try:
            if requests.get(server.url + "/health", timeout=2).ok:
                server.api("GET", "/api/projects/")  # the token works
                return server
        except (requests.RequestException, AssertionError):
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"Label Studio did not answer within {START_TIMEOUT_S:.0f} s: "
                       f"{log.read_text(errors='replace')[-1500:]}")
