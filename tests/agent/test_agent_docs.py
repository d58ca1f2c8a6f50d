"""docs/agent.md documents every setting, topic, state, command, route and CLI command."""

from __future__ import annotations

import re
from pathlib import Path

from agent import protocol
from agent.cli import main
from agent.config import setting_names
from agent.models import ModelRegistry
from agent.server import create_app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "agent.md").read_text()


def test_every_setting_and_its_variable_is_documented():
    missing = [n for n in setting_names() if f"`{n}`" not in DOC or f"`YMIR_AGENT_{n.upper()}`" not in DOC]
    assert not missing


def test_every_topic_state_and_command_is_documented():
    assert not [k for k in protocol.KINDS if f"| `{k}` |" not in DOC]
    assert not [s for s in protocol.STATES if f"| `{s}` |" not in DOC]
    assert not [c for c in protocol.COMMANDS if f"| `{c}` |" not in DOC]


def test_every_route_is_documented():
    app = create_app(ModelRegistry())
    rules = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert rules
    assert not [r for r in rules if r not in DOC]


def test_every_cli_command_is_documented():
    assert not [c for c in main.commands if f"`ymir-agent {c}" not in DOC]


def test_the_documented_example_config_loads(tmp_path):
    from agent.config import load_settings

    block = re.search(r"```toml\n(.*?)```", DOC, re.S).group(1)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(block)
    s = load_settings(cfg, env={})
    assert s.device_id == "cam-entrance-1" and s.mqtt_url.startswith("mqtt://") and s.mining_top_k == 3
