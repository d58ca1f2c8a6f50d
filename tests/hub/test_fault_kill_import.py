"""Faults: the process running an import is SIGKILLed half-way -> after a restart the version is ``failed``
(interrupted), no partial rows and no orphan asset file remain, and the import runs again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from hub_helpers import noise_zip

from hub.cli import main


def _asset_files(home: Path) -> set[str]:
    return {p.name for p in (home / "assets").rglob("*") if p.is_file()}


def _workers_of(home: Path) -> list[int]:
    """Live processes whose command line names this workspace's asset folder (the import's workers)."""
    marker = str(home / "assets").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():  # a zombie's is empty
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_sigkill_during_an_import(tmp_path):
    home = tmp_path / "ws"
    cli = CliRunner()

    def run(*args):
        return cli.invoke(main, ["--home", str(home), *args])

    assert run("init", "--admin-password", "password1").exit_code == 0
    run("class", "add", "circle")
    run("project", "create", "p", "--classes", "circle")
    big = noise_zip(tmp_path / "big.zip", 4000, size=(64, 48))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ymir-hub"), "--home", str(home), "dataset", "import", "--project",
                             "p", "--zip", str(big), "--name", "big"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "YMIR_IMPORT_WORKERS": "1"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "%" in line and not line.rstrip().endswith("0% (0/4000 img)"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    # its worker processes die with it: one left storing its queued chunks would write files after
    # the recovery's sweep (what CI saw on a slower machine)
    deadline = time.monotonic() + 0.25  # the kernel kills them as the import dies: no time to work on
    while _workers_of(home) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _workers_of(home), "image/asset worker processes outlived the killed import"

    from hub import create_app
    from hub.config import load_settings

    app = create_app(load_settings(home, env={}))  # the restart: recovery runs here
    app.extensions["ymir"].close()
    with sqlite3.connect(home / "hub.db") as conn:
        state, error = conn.execute("SELECT state, error FROM dataset_versions WHERE id = 1").fetchone()
        assert state == "failed" and "interrupted" in error
        assert conn.execute("SELECT count(*) FROM version_assets").fetchone()[0] == 0
        rows = {r[0] for r in conn.execute("SELECT sha1 FROM assets")}
    assert _asset_files(home) <= rows, "orphan asset files left by the killed import"

    again = run("dataset", "import", "--project", "p", "--zip", str(big), "--name", "big")
    assert again.exit_code == 0, again.output
    assert len(_asset_files(home)) == 4000


_PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from hub.datasets.image_workers import ImageWorkers
workers = ImageWorkers(sys.argv[2], "test", 10**8, [(0, "blocked.jpg", ("file", sys.argv[3]))], 1)
print(workers.workers[0].proc.pid, flush=True)
time.sleep(60)
"""


def test_an_image_worker_dies_with_the_killed_import(tmp_path):
    # the worker is stuck reading a FIFO nobody writes: only its parent's death can end it
    fifo = tmp_path / "blocked.jpg"
    os.mkfifo(fifo)
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, root, str(tmp_path / "assets"), str(fifo)],
                              stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert Path(f"/proc/{worker}/cmdline").read_bytes(), "the worker should be running"
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if not Path(f"/proc/{worker}/cmdline").read_bytes():
                break  # a zombie: dead, waiting to be reaped
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the image worker outlived the import that started it")
