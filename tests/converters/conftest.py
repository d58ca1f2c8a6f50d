"""Converter fixtures: a quickly-fitted tiny ONNX detector (cached across runs) and seeded image sets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tinydet  # noqa: E402

from detkit.synth import write_sample_zip  # noqa: E402


@pytest.fixture(scope="session")
def tiny_onnx(request, tmp_path_factory) -> Path:
    """A trained contract ONNX detector (built once, then taken from pytest's cache folder)."""
    return tinydet.for_session(request, tmp_path_factory)


@pytest.fixture(scope="session")
def cal_zip(tmp_path_factory) -> Path:
    return write_sample_zip(tmp_path_factory.mktemp("cal") / "cal.zip", images=48, seed=5)


@pytest.fixture(scope="session")
def val_zip(tmp_path_factory) -> Path:
    return write_sample_zip(tmp_path_factory.mktemp("val") / "val.zip", images=60, seed=7)
