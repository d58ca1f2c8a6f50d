"""Docs are tested beyond the hub and the agent (tests/hub/test_hub_docs.py, tests/agent/test_agent_docs.py):
every ``ymir-convert`` command, every executor config key, every edge-captures/demo setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def test_every_ymir_convert_command_is_documented():
    from converters.cli import main

    assert "package" in main.commands
    missing = [c for c in main.commands if f"ymir-convert {c}" not in DOCS]
    assert not missing, f"undocumented ymir-convert commands: {missing}"


def test_every_executor_config_key_is_in_the_executor_contract():
    from executor.config import RULES

    text = (ROOT / "docs" / "executor-contract.md").read_text()
    missing = [k for k in RULES if f"`{k}`" not in text]
    assert not missing, f"undocumented executor config keys in docs/executor-contract.md: {missing}"


def test_every_demo_setting_is_documented_where_the_demo_is():
    script = (ROOT / "scripts" / "demo_loop.py").read_text()
    names = set(re.findall(r'os\.environ\.get\("(DEMO_\w+)"', script))
    assert {"DEMO_PORT", "DEMO_SERVE"} <= names
    head = (ROOT / "scripts" / "demo.sh").read_text()
    assert not [n for n in names if n not in head], "a DEMO_* setting missing from scripts/demo.sh's header"
