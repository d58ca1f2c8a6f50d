"""Faults: the disk fills up while an import stores its assets (a real, small tmpfs) -> a clear error, the
version ``failed``, no orphan file, the earlier data intact, and the same import works once there is room."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hub_helpers import noise_zip

from hub.cli import main


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)



def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_disk_full_during_an_import(small_disk, tmp_path):
    home = small_disk / "ws"
    cli = CliRunner()

    def run(*args):
        return cli.invoke(main, ["--home", str(home), *args])

    assert run("init", "--admin-password", "password1").exit_code == 0
    run("class", "add", "circle")
    assert run("project", "create", "p", "--classes", "circle").exit_code == 0
    small = run("dataset", "import", "--project", "p", "--zip", str(noise_zip(tmp_path / "s.zip", 5, 1)), "--name", "s")
    assert small.exit_code == 0, small.output
    before = _files(home / "assets")
    assert len(before) == 5

    big = noise_zip(tmp_path / "big.zip", 90, 2)  # ~7 MB into a 4 MB disk
    r = run("dataset", "import", "--project", "p", "--zip", str(big), "--name", "big")
    assert r.exit_code == 2, r.output  # a clear error, not a traceback
    assert "no space left on the disk" in r.output and "import again" in r.output
    assert _files(home / "assets") == before  # no orphan file of the failed import, the old ones intact
    listing = run("dataset", "list", "--project", "p").output
    assert "failed" in listing and "5 images" in listing
    import sqlite3

    with sqlite3.connect(home / "hub.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 5  # no asset row without its file

    subprocess.run(["mount", "-o", "remount,size=24m", str(small_disk)], check=True)  # room again
    again = run("dataset", "import", "--project", "p", "--zip", str(big), "--name", "big")
    assert again.exit_code == 0, again.output
    assert len(_files(home / "assets")) == 95
