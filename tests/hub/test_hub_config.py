"""Settings: read once from flags and environment, validated; the workspace layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from detkit.errors import BadInput
from hub.config import load_settings, resolve_home


def test_home_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_home(None, env={}) == tmp_path / "ymir-workplace"
    assert resolve_home(None, env={"YMIR_HOME": "envhome"}) == tmp_path / "envhome"
    assert resolve_home("flag", env={"YMIR_HOME": "envhome"}) == tmp_path / "flag"


def test_settings_are_validated(tmp_path):
    s = load_settings(tmp_path, env={"YMIR_MAX_UPLOAD_MB": "5", "YMIR_ALLOW_URL_IMPORT": "0"})
    assert s.max_upload_bytes == 5 * 1024 * 1024 and s.allow_url_import is False
    for bad in ({"YMIR_MAX_UPLOAD_MB": "lots"}, {"YMIR_MAX_IMAGES": "-3"}, {"YMIR_ALLOW_URL_IMPORT": "maybe"}):
        with pytest.raises(BadInput, match=next(iter(bad))):
            load_settings(tmp_path, env=bad)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BadInput, match="not a folder"):
        load_settings(f, env={})


def test_layout_and_secret(tmp_path):
    s = load_settings(tmp_path / "w", env={})
    assert [p.relative_to(s.home).as_posix() for p in s.layout_dirs()][:4] == ["assets", "models", "jobs", "sharing"]
    key = s.session_secret()
    assert key == s.session_secret() and len(key) == 64  # generated once, then kept
    assert (Path(s.home) / ".secret_key").stat().st_mode & 0o077 == 0


def test_url_import_can_be_turned_off(workspace):
    from hub.datasets import service
    from hub.store import projects as project_store
    from hub.store.workspace import Workspace

    project_store.create_project(workspace.database, "p")
    ws = Workspace(workspace.settings.with_(allow_url_import=False))
    with pytest.raises(BadInput, match="turned off"):
        service.start_import(ws, "p", kind="url", value="http://127.0.0.1:9/x.zip")
    ws.close()


def test_interrupted_imports_are_failed_at_start(workspace, sample_zip):
    import subprocess
    import sys

    from hub import create_app
    from hub.datasets import service
    from hub.store import datasets as ds_store
    from hub.store import projects as project_store

    project_store.create_project(workspace.database, "p")
    live = service.start_import(workspace, "p", kind="zip", value=str(sample_zip), unknown="add")
    dead = service.start_import(workspace, "p", kind="zip", value=str(sample_zip), unknown="add")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with workspace.database.write() as db:  # as if a process that has exited had started it
        src = ds_store.get_version(workspace.database, dead["id"])["source"]
        db.execute("UPDATE dataset_versions SET source = ? WHERE id = ?",
                   [__import__("json").dumps({**src, "pid": gone.pid}), dead["id"]])
    app = create_app(workspace.settings)
    try:
        assert ds_store.get_version(workspace.database, dead["id"])["state"] == "failed"
        assert "interrupted" in ds_store.get_version(workspace.database, dead["id"])["error"]
        assert ds_store.get_version(workspace.database, live["id"])["state"] == "importing"
    finally:
        app.extensions["ymir"].close()


def test_the_server_switch_interval_is_a_setting(tmp_path):
    import sys

    from hub.config import apply_thread_switch

    assert load_settings(tmp_path, env={}).thread_switch_us == 1000
    for bad in ("0", "fast"):
        with pytest.raises(BadInput, match="YMIR_THREAD_SWITCH_US"):
            load_settings(tmp_path, env={"YMIR_THREAD_SWITCH_US": bad})
    before = sys.getswitchinterval()
    try:
        apply_thread_switch(load_settings(tmp_path, env={"YMIR_THREAD_SWITCH_US": "250"}))
        assert sys.getswitchinterval() == pytest.approx(250e-6)
    finally:
        sys.setswitchinterval(before)
