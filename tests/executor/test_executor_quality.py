"""The default settings on the benchmark's sample set (slow: several minutes of CPU).

The timed figure lives in ``scripts/bench/train_shapes.py`` / ``docs/bench/train_shapes.md``;
this test only guards the accuracy a user who changes nothing gets.
"""

from __future__ import annotations

import pytest
import yaml
from executor_helpers import make_training_task, run_executor


@pytest.mark.slow
def test_default_settings_reach_the_quality_bar(tmp_path):
    root = make_training_task(tmp_path, 400, 100, seed=0)
    run = run_executor(root, timeout=3600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = yaml.safe_load((run.out / "models" / "result.yaml").read_text())
    assert result["map"] >= 0.85, result["model_stages"]["best"]
