"""The CLI and a running server use one workspace at once (separate processes, one SQLite file)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests


@pytest.mark.slow
def test_cli_import_while_the_server_serves(hub_server, workspace, token, tmp_path):
    from detkit.synth import write_sample_zip

    sample = write_sample_zip(tmp_path / "s.zip", images=40, seed=9)
    base = f"{hub_server}/api/v1"
    h = {"Authorization": f"Bearer {token}"}
    assert (
        requests.post(f"{base}/projects", json={"name": "shared"}, headers=h, timeout=10).status_code == 201
    )
    cli = [sys.executable, "-c", "from hub.cli import main; main()", "--home", str(workspace.settings.home)]
    proc = subprocess.Popen(
        [
            *cli,
            "dataset",
            "import",
            "--project",
            "shared",
            "--zip",
            str(sample),
            "--unknown",
            "add",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answered = 0
    while proc.poll() is None:  # the server keeps answering, and writing, during the import
        r = requests.post(f"{base}/classes", json={"name": f"c{answered}"}, headers=h, timeout=30)
        assert r.status_code == 201, r.text
        answered += 1
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["images"] == 40 and answered > 0
    seen = requests.get(f"{base}/versions/{result['version_id']}", headers=h, timeout=10).json()
    assert seen["state"] == "ready" and seen["gt_boxes"] == result["boxes"]
