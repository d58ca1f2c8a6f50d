"""``ymir-hub``: the hub's command line, working directly on a workspace (``--home``).

Command groups live in small ``hub/cli_*.py`` modules, each exporting ``COMMANDS`` (a list of
click commands or groups). To add a group, write a module and add its name to
:data:`COMMAND_MODULES` — nothing else here changes. Every command takes ``--json``; a user error
(any :class:`~detkit.errors.YmirError`) prints ``error: <message>`` and exits 2.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys

import click

from detkit.errors import YmirError

#: the one registry of command modules (each exports ``COMMANDS``)
COMMAND_MODULES = [
    "hub.cli_core",
    "hub.cli_projects",
    "hub.cli_datasets",
    "hub.cli_jobs",
    "hub.cli_fleet",
    "hub.cli_broker",
    "hub.cli_eval",
    "hub.cli_mining",
    "hub.cli_labeling",
    "hub.cli_iterations",
]


class CliContext:
    """What commands share: the chosen home, the settings and (opened on demand) the workspace."""

    def __init__(self, home: str | None):
        self.home = home
        self._settings = None
        self._workspace = None

    @property
    def settings(self):
        if self._settings is None:
            from hub.config import load_settings

            self._settings = load_settings(self.home)
        return self._settings

    @property
    def workspace(self):
        """The existing workspace (NotFound, exit 2, when ``init`` never ran there)."""
        if self._workspace is None:
            from hub.store.workspace import Workspace

            self._workspace = Workspace.open(self.settings)
        return self._workspace

    @property
    def database(self):
        return self.workspace.database

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
            self._workspace = None


class HubGroup(click.Group):
    """A click group that turns :class:`YmirError` into ``error: ...`` and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except YmirError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(2)


def emit(data, as_json: bool, text=None) -> None:
    """Print ``data`` as JSON (``--json``) or as ``text`` (a string or a function of data)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif callable(text):
        click.echo(text(data))
    elif text is not None:
        click.echo(text)
    else:
        click.echo(json.dumps(data, indent=2, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
pass_cli = click.make_pass_decorator(CliContext)


@click.group(cls=HubGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Workspace folder (default: $YMIR_HOME, then ./ymir-workplace).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx: click.Context, home: str | None, verbose: bool) -> None:
    """ymir-edge hub: projects, classes, datasets and the web server."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    obj = CliContext(home)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


def register(group: click.Group, module_names: list[str]) -> None:
    """Add every command of every listed module to ``group``."""
    for name in module_names:
        module = importlib.import_module(name)
        for command in module.COMMANDS:
            group.add_command(command)


register(main, COMMAND_MODULES)
