"""Fleet fixtures: Mosquitto (tests/fixtures_mqtt.py), a served hub with its fleet connected."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: fixtures_mqtt
from fixtures_mqtt import mosquitto  # noqa: E402,F401  (pytest fixture)
from fleet_helpers import Api, HubServer, make_fleet_app  # noqa: E402


@pytest.fixture
def fleet_hub(tmp_path, mosquitto):  # noqa: F811
    """``(app, server, api)``: a hub whose fleet talks to the test broker, served over HTTP."""
    app, token = make_fleet_app(tmp_path, mosquitto.url, rollout_timeout_s=20)
    server = HubServer(app).start()
    try:
        yield app, server, Api(server.url, token)
    finally:
        server.stop()
        app.extensions["ymir"].close()
