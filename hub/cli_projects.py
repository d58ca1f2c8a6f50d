"""``ymir-hub project ...`` and ``ymir-hub class ...``."""

from __future__ import annotations

import click

from hub.cli import CliContext, emit, json_option, pass_cli


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _project_text(p: dict) -> str:
    lines = [
        f"project {p['id']}: {p['name']}" + ("  (archived)" if p["archived"] else ""),
        f"  classes: {', '.join(p['targets']) or '-'}",
        f"  datasets: {p['dataset_groups']} ({p['dataset_versions']} versions)",
    ]
    if p["description"]:
        lines.append(f"  description: {p['description']}")
    return "\n".join(lines)


@click.group()
def project() -> None:
    """Projects: create, list, show, edit, archive."""


@project.command("create")
@click.argument("name")
@click.option("--classes", default="", help="Training targets, comma-separated class names.")
@click.option("--add-missing/--no-add-missing", default=True, show_default=True,
              help="Add target classes that do not exist yet (else: refuse them).")
@click.option("--description", default="")
@json_option
@pass_cli
def project_create(cli: CliContext, name: str, classes: str, add_missing: bool, description: str,
                   as_json: bool) -> None:
    """Create a project."""
    from hub.store import projects as project_store

    p = project_store.create_project(
        cli.database, name, description=description, targets=_split(classes) or [], add_missing=add_missing
    )

    def text(p: dict) -> str:
        added = p.get("added_classes")
        return _project_text(p) + (f"\n  added classes: {', '.join(added)}" if added else "")

    emit(p, as_json, text)


@project.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived projects.")
@json_option
@pass_cli
def project_list(cli: CliContext, include_archived: bool, as_json: bool) -> None:
    """List projects."""
    from hub.store import projects as project_store

    ps = project_store.list_projects(cli.database, include_archived=include_archived)
    emit(
        ps,
        as_json,
        lambda rows: (
            "\n".join(
                f"{p['id']:>4}  {p['name']:<24} {','.join(p['targets']):<30} {p['dataset_groups']} datasets"
                + ("  archived" if p["archived"] else "")
                for p in rows
            )
            or "no projects"
        ),
    )


@project.command("show")
@click.argument("ref")
@json_option
@pass_cli
def project_show(cli: CliContext, ref: str, as_json: bool) -> None:
    """Show a project (by id or name)."""
    from hub.store import projects as project_store

    emit(project_store.find_project(cli.database, ref), as_json, _project_text)


@project.command("edit")
@click.argument("ref")
@click.option("--name", default=None)
@click.option("--description", default=None)
@click.option("--classes", default=None, help="New training targets, comma-separated.")
@json_option
@pass_cli
def project_edit(cli: CliContext, ref: str, name, description, classes, as_json: bool) -> None:
    """Edit a project's name, description or training targets."""
    from hub.store import projects as project_store

    p = project_store.find_project(cli.database, ref)
    p = project_store.update_project(
        cli.database, p["id"], name=name, description=description, targets=_split(classes)
    )
    emit(p, as_json, _project_text)


@project.command("archive")
@click.argument("ref")
@click.option("--undo", is_flag=True, help="Unarchive.")
@json_option
@pass_cli
def project_archive(cli: CliContext, ref: str, undo: bool, as_json: bool) -> None:
    """Archive (or with --undo, unarchive) a project."""
    from hub.store import projects as project_store

    p = project_store.find_project(cli.database, ref)
    p = project_store.update_project(cli.database, p["id"], archived=not undo)
    emit(p, as_json, _project_text)


def _class_text(c: dict) -> str:
    return f"{c['name']}" + (f"  (aliases: {', '.join(c['aliases'])})" if c["aliases"] else "")


@click.group("class")
def class_() -> None:
    """The global class list and its aliases."""


@class_.command("add")
@click.argument("name")
@click.option("--alias", "aliases", multiple=True, help="An alias (repeatable).")
@json_option
@pass_cli
def class_add(cli: CliContext, name: str, aliases: tuple[str, ...], as_json: bool) -> None:
    """Add a class with optional aliases."""
    from hub.store import classes as class_store

    emit(class_store.add_class(cli.database, name, list(aliases)), as_json, _class_text)


@class_.command("list")
@json_option
@pass_cli
def class_list(cli: CliContext, as_json: bool) -> None:
    """List classes with their aliases."""
    from hub.store import classes as class_store

    cs = class_store.list_classes(cli.database)
    emit(cs, as_json, lambda rows: "\n".join(_class_text(c) for c in rows) or "no classes")


@class_.command("rename")
@click.argument("name")
@click.argument("new_name")
@json_option
@pass_cli
def class_rename(cli: CliContext, name: str, new_name: str, as_json: bool) -> None:
    """Rename a class (annotations follow)."""
    from hub.store import classes as class_store

    emit(class_store.rename_class(cli.database, name, new_name), as_json, _class_text)


@class_.command("alias")
@click.argument("name")
@click.argument("alias")
@json_option
@pass_cli
def class_alias(cli: CliContext, name: str, alias: str, as_json: bool) -> None:
    """Give a class another alias."""
    from hub.store import classes as class_store

    emit(class_store.add_alias(cli.database, name, alias), as_json, _class_text)


COMMANDS = [project, class_]
