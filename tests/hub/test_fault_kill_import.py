"""Faults: the process running an import is SIGKILLed half-way -> after a restart the version is ``failed``
(interrupted), no partial rows and no orphan asset file remain, and the import runs again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from hub_helpers import noise_zip

from hub.cli import main


def _asset_files(home: Path) -> set[str]:
    return {p.name for p in (home / "assets").rglob("*") if p.is_file()}


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
