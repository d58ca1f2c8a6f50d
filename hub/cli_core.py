"""``ymir-hub init | serve | sample-data | user``."""

from __future__ import annotations

import logging

import click

from hub.cli import CliContext, emit, json_option, pass_cli

log = logging.getLogger(__name__)


@click.command()
@click.option(
    "--admin-password", default=None, help="Password of the admin user (default: generated, printed once)."
)
@click.option("--admin-user", default="admin", show_default=True, help="Name of the admin user.")
@json_option
@pass_cli
def init(cli: CliContext, admin_password: str | None, admin_user: str, as_json: bool) -> None:
    """Create the workspace (hub.db, assets/, models/, jobs/, sharing/) and an admin user."""
    from hub import auth
    from hub.store import users as user_store
    from hub.store.workspace import Workspace

    settings = cli.settings
    ws = Workspace.create(settings)
    cli._workspace = ws
    out = {"home": str(settings.home), "admin": admin_user, "created_admin": False}
    if user_store.count_users(ws.database) == 0:
        password = admin_password or auth.generate_password()
        auth.add_user(ws.database, admin_user, password, "admin")
        out["created_admin"] = True
        if not admin_password:
            out["password"] = password

    def text(d):
        lines = [f"workspace ready at {d['home']}"]
        if d["created_admin"]:
            lines.append(f"admin user: {d['admin']}")
            if "password" in d:
                lines.append(f"admin password (shown once): {d['password']}")
        return "\n".join(lines)

    emit(out, as_json, text)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@pass_cli
def serve(cli: CliContext, host: str, port: int, threads: int) -> None:
    """Run the hub's web server (waitress)."""
    import signal
    import sys

    import waitress

    from hub import create_app
    from hub.config import apply_thread_switch

    app = create_app(cli.settings)
    apply_thread_switch(cli.settings)
    # SIGTERM stops like Ctrl-C: the finally below closes the runner and background work cleanly
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo(f"ymir hub on http://{host}:{port}  (workspace {cli.settings.home})")
    try:
        waitress.serve(app, host=host, port=port, threads=threads)
    finally:
        app.extensions["ymir"].close()


@click.command("sample-data")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Zip file to write.")
@click.option("--images", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.option("--seed", default=0, show_default=True, type=int)
@json_option
def sample_data(out: str, images: int, seed: int, as_json: bool) -> None:
    """Write a seeded synthetic YMIR-layout VOC zip (images/ + gt/) of shape scenes."""
    from detkit.progress import progress_bar
    from detkit.synth import write_sample_zip

    with progress_bar("sample data", total=images, unit="img", disable=as_json) as bar:
        path = write_sample_zip(out, images=images, seed=seed, progress=bar.update)
    emit({"out": str(path), "images": images, "seed": seed}, as_json, f"wrote {path} ({images} images)")


@click.group()
def user() -> None:
    """Users and API tokens."""


@user.command("add")
@click.argument("username")
@click.option("--password", default=None, help="Default: generated and printed once.")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@json_option
@pass_cli
def user_add(cli: CliContext, username: str, password: str | None, role: str, as_json: bool) -> None:
    """Add a user."""
    from hub import auth

    generated = password is None
    password = password or auth.generate_password()
    created = auth.add_user(cli.database, username, password, role)
    out = {**created}
    if generated:
        out["password"] = password
    emit(
        out,
        as_json,
        lambda d: (
            f"user {d['username']} ({d['role']}) added"
            + (f"; password (shown once): {d['password']}" if generated else "")
        ),
    )


@user.command("list")
@json_option
@pass_cli
def user_list(cli: CliContext, as_json: bool) -> None:
    """List users."""
    from hub.store import users as user_store

    users = user_store.list_users(cli.database)
    emit(users, as_json, lambda us: "\n".join(f"{u['id']:>4}  {u['username']:<20} {u['role']}" for u in us))


@user.command("token")
@click.argument("username")
@click.option("--label", default="", help="A note to recognise the token by.")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default=None,
              help="What the token may do: read (GET only), write (a user's rights), admin (administrators "
                   "only). Default: all the user's rights.")
@json_option
@pass_cli
def user_token(cli: CliContext, username: str, label: str, scope: str | None, as_json: bool) -> None:
    """Make an API token for a user (printed once; only its hash is stored)."""
    from hub.store import users as user_store

    u = user_store.get_user_by_name(cli.database, username)
    scope = scope or user_store.default_scope(u["role"])
    token = user_store.create_token(cli.database, u["id"], label, scope)
    emit({"username": username, "token": token, "label": label, "scope": scope}, as_json, token)


COMMANDS = [init, serve, sample_data, user]
