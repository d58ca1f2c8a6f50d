"""A bounded coverage-guided fuzz run (atheris) of every parser of outside input: no crash, no hang."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                 reason="atheris did not install here (scripts/setup.sh tries it)")]


@pytest.mark.parametrize("target", ["voc", "coco", "yolo", "ls_export", "mqtt", "oip", "image", "zip"])
def test_bounded_fuzz_run(target, tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), target, "-runs=3000", "-max_total_time=20",
         "-timeout=5", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*"))
    assert run.returncode == 0 and not crashes, run.stderr[-3000:]
    assert "Done" in run.stderr or "DONE" in run.stderr or "INFO:" in run.stderr
