"""Agent test fixtures: tiny real ONNX models, an artifact server standing in for the hub, and
Mosquitto (the reusable fixture of ``tests/fixtures_mqtt.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared fixture modules
from agent_helpers import ArtifactServer, make_detector_onnx, make_plain_onnx  # noqa: E402
from fixtures_mqtt import mosquitto  # noqa: E402,F401  (pytest fixture)


@pytest.fixture
def hub():
    server = ArtifactServer().start()
    yield server
    server.stop()


@pytest.fixture
def detector_onnx(tmp_path) -> Path:
    return make_detector_onnx(tmp_path / "models" / "tiny.onnx")


@pytest.fixture
def plain_onnx(tmp_path) -> Path:
    return make_plain_onnx(tmp_path / "models" / "plain.onnx")
