"""ymir-hub CLI on a real workspace: init, projects, classes, dataset import/show/list/export/ops, users."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from click.testing import CliRunner

from hub.cli import main


@pytest.fixture
def home(tmp_path):
    return tmp_path / "ws"


def run(home, *args, ok=True):
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def run_json(home, *args):
    return json.loads(run(home, *args, "--json").stdout)


@pytest.fixture
def ready(home):
    run(home, "init", "--admin-password", "secret-pass-1")
    return home


def test_init_makes_the_workspace_layout_and_an_admin(home):
    out = run_json(home, "init", "--admin-password", "secret-pass-1")
    assert out["created_admin"] is True and "password" not in out
    for name in ("hub.db", "assets", "models", "jobs", "sharing"):
        assert (home / name).exists(), name
    # idempotent: a second init keeps the users and says so
    assert run_json(home, "init")["created_admin"] is False


def test_init_prints_a_generated_password_once(home):
    out = run(home, "init").stdout
    assert "admin password (shown once):" in out
    password = out.rsplit(":", 1)[1].strip()
    from hub import auth
    from hub.config import load_settings
    from hub.store.workspace import Workspace

    ws = Workspace.open(load_settings(home, env={}))
    assert auth.verify_login(ws.database, "admin", password)["role"] == "admin"
    ws.close()


def test_home_defaults_to_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YMIR_HOME", raising=False)
    assert CliRunner().invoke(main, ["init", "--admin-password", "secret-pass-1"]).exit_code == 0
    assert (tmp_path / "ymir-workplace" / "hub.db").exists()
    monkeypatch.setenv("YMIR_HOME", str(tmp_path / "from-env"))
    assert CliRunner().invoke(main, ["init", "--admin-password", "secret-pass-1"]).exit_code == 0
    assert (tmp_path / "from-env" / "hub.db").exists()


def test_user_errors_exit_2_with_a_message(home, ready):
    r = run(home, "project", "show", "nope", ok=False)
    assert r.exit_code == 2 and "error: project 'nope' not found" in r.stderr
    run(home, "class", "add", "car")
    r = run(home, "class", "add", "CAR ", ok=False)
    assert r.exit_code == 2 and "already a class" in r.stderr
    r = CliRunner().invoke(main, ["--home", str(home / "missing"), "project", "list"])
    assert r.exit_code == 2 and "run: ymir-hub" in r.stderr


def test_projects_and_classes(ready):
    home = ready
    cls = run_json(home, "class", "add", "Person", "--alias", "Human", "--alias", "man")
    assert cls["name"] == "person" and cls["aliases"] == ["human", "man"]
    run(home, "class", "add", "car")
    assert run_json(home, "class", "alias", "car", "auto")["aliases"] == ["auto"]
    assert run_json(home, "class", "rename", "car", "vehicle")["name"] == "vehicle"
    names = {c["name"]: c["aliases"] for c in run_json(home, "class", "list")}
    assert names == {"person": ["human", "man"], "vehicle": ["auto"]}
    p = run_json(home, "project", "create", "street", "--classes", "human,auto", "--description", "d")
    assert p["targets"] == ["person", "vehicle"]  # aliases resolve to main names
    assert run_json(home, "project", "show", "street")["id"] == p["id"]
    assert run_json(home, "project", "show", str(p["id"]))["name"] == "street"
    assert run_json(home, "project", "edit", "street", "--classes", "person")["targets"] == ["person"]
    run(home, "project", "archive", "street")
    assert run_json(home, "project", "list") == []
    assert run_json(home, "project", "list", "--all")[0]["archived"] is True


def test_dataset_import_show_ops_export(ready, tmp_path):
    home = ready
    sample = tmp_path / "s.zip"
    assert run_json(home, "sample-data", "--out", str(sample), "--images", "8", "--seed", "5")["images"] == 8
    for c in ("circle", "square", "triangle"):
        run(home, "class", "add", c)
    run(home, "project", "create", "shapes", "--classes", "circle,square")
    out = run_json(home, "dataset", "import", "--project", "shapes", "--zip", str(sample), "--name", "train")
    with zipfile.ZipFile(sample) as zf:
        xml_boxes = sum(zf.read(n).count(b"<object>") for n in zf.namelist() if n.endswith(".xml"))
    assert out["images"] == 8 and out["boxes"] == xml_boxes and out["skipped"] == []
    vid = out["version_id"]
    shown = run_json(home, "dataset", "show", str(vid))
    assert shown["state"] == "ready" and shown["report"]["images"] == 8
    text = run(home, "dataset", "show", str(vid)).stdout
    assert "8 images" in text
    listed = run_json(home, "dataset", "list", "--project", "shapes")
    assert [v["id"] for v in listed] == [vid]

    sample_out = run_json(home, "dataset", "sample", str(vid), "--count", "3", "--seed", "1")
    assert sample_out["images"] == 3
    split = run_json(home, "dataset", "split", str(vid), "--train", "0.75", "--val", "0.25")
    assert split["train"]["images"] + split["val"]["images"] == 8
    assert split["train"]["dataset"] == "train-train"
    filt = run_json(home, "dataset", "filter", str(vid), "--classes-in", "circle")
    assert 0 < filt["images"] <= 8
    merged = run_json(
        home, "dataset", "merge", str(split["train"]["version_id"]), str(split["val"]["version_id"])
    )
    assert merged["images"] == 8 and merged["boxes"] == xml_boxes
    r = run(home, "dataset", "merge", str(vid), str(sample_out["version_id"]), ok=False)
    assert r.exit_code == 2 and "share 3 image(s)" in r.stderr

    for fmt, name in (("voc", "o.zip"), ("coco", "o.json"), ("yolo", "y.zip")):
        res = run_json(home, "dataset", "export", str(vid), "--format", fmt, "--out", str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 0 and res["format"] == fmt
    coco = json.loads((tmp_path / "o.json").read_text())
    assert len(coco["images"]) == 8 and len(coco["annotations"]) == xml_boxes


def test_dataset_import_unknown_classes_stop_then_add(ready, tmp_path):
    home = ready
    sample = tmp_path / "s.zip"
    run(home, "sample-data", "--out", str(sample), "--images", "3")
    run(home, "project", "create", "p")
    r = run(home, "dataset", "import", "--project", "p", "--zip", str(sample), ok=False)
    assert r.exit_code == 2 and "unknown classes" in r.stderr
    failed = run_json(home, "dataset", "list")[0]
    assert failed["state"] == "failed" and failed["images"] == 0
    out = run_json(home, "dataset", "import", "--project", "1", "--zip", str(sample), "--unknown", "add")
    assert out["images"] == 3 and out["boxes"] > 0
    assert {c["name"] for c in run_json(home, "class", "list")} >= {"circle"}


def test_dataset_import_needs_exactly_one_source(ready):
    r = run(ready, "dataset", "import", "--project", "x", ok=False)
    assert r.exit_code == 2 and "exactly one of" in r.output


def test_users_and_tokens(ready):
    u = run_json(ready, "user", "add", "bob", "--password", "bob-pass-12")
    assert u["role"] == "user" and "password_hash" not in u
    tok = run_json(ready, "user", "token", "bob", "--label", "ci")["token"]
    assert tok.startswith("ymir_")
    from hub.config import load_settings
    from hub.store import users as user_store
    from hub.store.workspace import Workspace

    ws = Workspace.open(load_settings(ready, env={}))
    stored = [r[0] for r in ws.database.db.execute("SELECT token_hash FROM api_tokens").fetchall()]
    assert tok not in stored and user_store.token_hash(tok) in stored
    assert user_store.user_for_token(ws.database, tok)["username"] == "bob"
    ws.close()


def test_console_script_runs(tmp_path):
    """The installed entry point (hub.cli:main) works as a separate process."""
    exe = [sys.executable, "-c", "from hub.cli import main; main()"]
    r = subprocess.run(
        [*exe, "--home", str(tmp_path / "w"), "init", "--admin-password", "secret-pass-1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["created_admin"] is True
    r = subprocess.run(
        [*exe, "--home", str(tmp_path / "w"), "project", "show", "zzz"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "not found" in r.stderr


@pytest.mark.slow
def test_serve_runs_waitress(ready):
    """``ymir-hub serve`` answers health on its port and stops on SIGTERM."""
    import os
    import signal
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "YMIR_RUN_JOBS": "0", "YMIR_FLEET": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hub.cli import main; main()",
            "--home",
            str(ready),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/projects", timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0  # a clean stop


def test_project_create_adds_missing_target_classes_unless_told_not_to(ready):
    home = ready
    run(home, "class", "add", "person", "--alias", "human")
    p = run_json(home, "project", "create", "street", "--classes", "Human, Bike ,car")
    assert p["targets"] == ["person", "bike", "car"] and p["added_classes"] == ["bike", "car"]
    assert {c["name"] for c in run_json(home, "class", "list")} == {"person", "bike", "car"}
    assert "added classes: bike, car" not in run(home, "project", "show", "street").stdout
    refused = run(home, "project", "create", "road", "--classes", "person,truck", "--no-add-missing", ok=False)
    assert refused.exit_code == 2 and "truck" in refused.output
    assert "road" not in {p["name"] for p in run_json(home, "project", "list")}
    assert "truck" not in {c["name"] for c in run_json(home, "class", "list")}


def test_progress_into_a_pipe_is_plain_lines_one_display_per_operation(ready, tmp_path):
    """sample-data and an import with stderr in a pipe (a CI log): no carriage-return frames, a start line,
    at most one line per tenth, one end line, for each operation."""
    sample = tmp_path / "p.zip"

    def cli(*args):
        return subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", "--home", str(ready), *args],
                              capture_output=True, text=True, timeout=300, check=True)

    made = cli("sample-data", "--out", str(sample), "--images", "40", "--seed", "2").stderr
    for c in ("circle", "square", "triangle"):
        cli("class", "add", c)
    cli("project", "create", "pipe", "--classes", "circle,square,triangle")
    imported = cli("dataset", "import", "--project", "pipe", "--zip", str(sample), "--name", "train").stderr
    for err, name in ((made, "sample data"), (imported, "import train")):
        lines = [ln for ln in err.splitlines() if ln.startswith(f"[{name}]")]
        assert "\r" not in err, err[:500]
        assert sum("started" in ln for ln in lines) == 1 and sum(" done: " in ln for ln in lines) == 1, err
        assert 2 <= len(lines) <= 14, lines
