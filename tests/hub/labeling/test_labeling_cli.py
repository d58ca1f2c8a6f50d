"""``ymir-hub label ...`` on a real workspace: create, show, export, import (without Label Studio JSON support:
a clear error), sync, finish, cancel; --json everywhere; errors exit 2 with the message."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tasks_helpers import labeling_zip  # noqa: E402

from hub.cli import main  # noqa: E402


def run(home, *args, code=0):
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def run_json(home, *args):
    return json.loads(run(home, *args, "--json").stdout)


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "ws"
    run(home, "init", "--admin-password", "secret-pass-1")
    run(home, "project", "create", "lab", "--classes", "circle,square,triangle")
    run(home, "dataset", "import", "--project", "lab", "--zip", str(labeling_zip(tmp_path / "lab.zip")),
        "--name", "pool", "--unknown", "add", "--json")
    return home


def test_create_show_export_finish(home, tmp_path):
    t = run_json(home, "label", "create", "--version", "1", "--name", "pool labels", "--assignee", "admin")
    assert t["state"] == "open" and t["images_total"] == 4 and t["classes"] == ["circle", "square", "triangle"]
    assert t["assignees"] == ["admin"]
    alias = run_json(home, "label", "create", "--version", "1", "--classes", "Circle,square")
    assert alias["classes"] == ["circle", "square"]
    text = run(home, "label", "show", str(t["id"])).stdout
    assert f"task {t['id']} [open] pool labels: 0/4 images done" in text
    listed = run_json(home, "label", "show", "--project", "lab")
    assert [x["id"] for x in listed] == [alias["id"], t["id"]]

    out = tmp_path / "t.zip"
    r = run_json(home, "label", "export", str(t["id"]), "--format", "voc", "--out", str(out))
    assert r["out"] == str(out) and "pred/a.xml" in zipfile.ZipFile(out).namelist()
    coco = tmp_path / "t.json"
    run(home, "label", "export", str(t["id"]), "--format", "coco", "--out", str(coco))
    assert len(json.loads(coco.read_text())["images"]) == 4

    assert "nothing to pull" in run(home, "label", "sync", str(t["id"])).stdout
    done = run_json(home, "label", "finish", str(t["id"]), "--accept-predictions")
    assert done["state"] == "done" and done["result_version_id"]
    assert "labeled version" in run(home, "label", "show", str(t["id"])).stdout
    assert run_json(home, "label", "cancel", str(alias["id"]))["state"] == "cancelled"


def test_errors_exit_2_with_the_message(home, tmp_path):
    r = run(home, "label", "create", "--version", "1", "--classes", "hexagon", code=2)
    assert "hexagon" in r.output
    r = run(home, "label", "show", "99", code=2)
    assert "99" in r.output
    t = run_json(home, "label", "create", "--version", "1")
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    r = run(home, "label", "import", str(t["id"]), str(bad), code=2)
    assert r.output.strip()
    run(home, "label", "finish", str(t["id"]))
    r = run(home, "label", "cancel", str(t["id"]), code=2)
    assert "done" in r.output
