"""Fixtures: one real training run shared by the tests that need a trained model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from executor_helpers import (  # noqa: E402
    FAST_TRAIN,
    TRAIN_IMAGES,
    VAL_IMAGES,
    Run,
    make_training_task,
    run_executor,
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Run:
    """One real training run shared by the tests that need a trained model."""
    root = make_training_task(tmp_path_factory.mktemp("train"), TRAIN_IMAGES, VAL_IMAGES, **FAST_TRAIN)
    run = run_executor(root)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def result_yaml(trained) -> dict:
    return yaml.safe_load((trained.out / "models" / "result.yaml").read_text())
