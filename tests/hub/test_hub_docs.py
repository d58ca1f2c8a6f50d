"""Docs are tested: every CLI command, API route and environment variable is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _docs(prefix: str) -> str:
    """``docs/<prefix>.md`` plus any ``docs/<prefix>-*.md`` (one per area, e.g. ``api-fleet.md``)."""
    return "\n".join(p.read_text() for p in sorted(DOCS.glob(f"{prefix}*.md")))


def _commands(cmd: click.Command, prefix: list[str]):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, [*prefix, name])
    else:
        yield " ".join(prefix)


def test_every_cli_command_is_documented():
    from hub.cli import main

    text = _docs("cli")
    commands = list(_commands(main, ["ymir-hub"]))
    assert "ymir-hub dataset import" in commands and len(commands) > 20
    missing = [c for c in commands if f"### `{c}`" not in text]
    assert not missing, f"undocumented in docs/cli*.md: {missing}"


def test_every_setting_is_documented():
    from hub.config import ENV_VARS

    text = _docs("cli")
    missing = [name for name in ENV_VARS if f"`{name}`" not in text]
    assert not missing, f"undocumented settings in docs/cli*.md: {missing}"


def test_every_api_route_is_documented(app):
    text = _docs("api")
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"<\1>", rule.rule)
        routes += [f"{m} {path}" for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    assert "POST /api/v1/projects/<ref>/datasets/import" in routes
    missing = [r for r in routes if f"`{r}`" not in text]
    assert not missing, f"undocumented in docs/api*.md: {missing}"
