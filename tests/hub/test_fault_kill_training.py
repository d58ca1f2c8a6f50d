"""Faults: the hub process running a training job is SIGKILLed mid-job -> the restarted hub either
re-attaches the executor (still running: its result becomes the model) or, when the executor died
with it, fails the job with a reason naming the restart; never a job left ``running``; a new job runs.

The job is a real training run of the built-in executor (``python -m executor``, 16 images of 64 px),
started by ``ymir-hub train --wait`` (the hub process that is killed) under the local job backend."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_helpers import shapes_hub

pytestmark = pytest.mark.slow
HUB = str(Path(sys.executable).parent / "ymir-hub")


def _job(home: Path) -> dict | None:
    """The newest train job row (read straight from hub.db, as another process sees it)."""
    with sqlite3.connect(home / "hub.db", timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM jobs WHERE kind = 'train' ORDER BY created_at DESC LIMIT 1").fetchone()
    return dict(row) if row else None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _train_then_kill(home: Path, epochs: int, until: float) -> tuple[dict, int]:
    """Start ``ymir-hub train --wait``, SIGKILL it once the job's progress passed ``until``; returns the
    job row and the executor's pid (its process group)."""
    cli = subprocess.Popen([HUB, "--home", str(home), "train", "--project", "shapes", "--train", "1", "--val", "2",
                            "--set", f"epochs={epochs}", "--set", "input_size=64", "--wait"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "YMIR_RUN_JOBS": "1"})
    deadline = time.monotonic() + 90
    job = None
    while time.monotonic() < deadline and cli.poll() is None:
        job = _job(home)
        if job and job["state"] == "running" and job["handle"] and job["progress"] >= until:
            break
        time.sleep(0.05)
    else:
        cli.kill()
        raise AssertionError(f"the job never got going: {job} {cli.stderr.read().decode()[-2000:]}")
    cli.send_signal(signal.SIGKILL)
    cli.wait(30)
    assert cli.returncode == -signal.SIGKILL
    pid = int(job["handle"].split(":")[1])
    return job, pid


def _restart_and_wait(home: Path, job_id: str, timeout: float = 120) -> dict:
    """A restarted hub (the served app, whose runner recovers at its first tick) until the job is final."""
    from hub import create_app
    from hub.config import load_settings

    app = create_app(load_settings(home, env={"YMIR_FLEET": "0"}))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = _job(home)
            if job["id"] == job_id and job["state"] != "running":
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still running {timeout} s after the restart: {_job(home)}")
    finally:
        app.extensions["ymir"].close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return shapes_hub(tmp_path_factory.mktemp("ws") / "ws", sets=(("train", 16, 1), ("val", 6, 2)))


def test_a_killed_hub_reattaches_its_running_training(hub):
    job, pid = _train_then_kill(hub.home, epochs=8, until=0.06)  # in the epoch loop, most epochs to go
    assert _alive(pid), "the executor runs in its own session: the hub's SIGKILL must not reach it"
    with sqlite3.connect(hub.home / "hub.db") as conn:  # nothing else moves it: it says running
        assert conn.execute("SELECT state FROM jobs WHERE id = ?", [job["id"]]).fetchone()[0] == "running"

    final = _restart_and_wait(hub.home, job["id"])
    assert final["state"] == "done", final
    assert final["owner"] != job["owner"], "the restarted hub took the job over"
    result = json.loads(final["result"])
    shown = json.loads(hub("model", "show", str(result["model_id"]), "--json").stdout)
    assert shown["job_id"] == job["id"] and any(f.endswith(".onnx") for s in shown["stages"] for f in s["files"])
    assert len(shown["history"]) == 8, "the re-attached run is the same run, every epoch of it"
    # and the hub goes on: a new job runs to the end
    again = json.loads(hub("train", "--project", "shapes", "--train", "1", "--val", "2", "--set", "epochs=1",
                           "--set", "input_size=64", "--wait", "--json").stdout)
    assert again["model_id"] == result["model_id"] + 1


def test_a_training_that_died_with_the_hub_fails_naming_the_restart(hub):
    job, pid = _train_then_kill(hub.home, epochs=12, until=0.0)
    os.killpg(pid, signal.SIGKILL)  # the whole machine went down: the executor (and its wrapper) with it
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)

    final = _restart_and_wait(hub.home, job["id"])
    assert final["state"] == "failed" and final["error_code"] == "hub_restart", final
    assert "hub restarted" in final["error"] and "exit code" in final["error"], final["error"]
    out = hub("job", "show", job["id"], "--json")
    assert json.loads(out.stdout)["state"] == "failed"
    again = json.loads(hub("train", "--project", "shapes", "--train", "1", "--val", "2", "--set", "epochs=1",
                           "--set", "input_size=64", "--wait", "--json").stdout)
    assert again["model_id"] >= 1
