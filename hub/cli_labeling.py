"""``ymir-hub label create | show | export | import | sync | finish | cancel``: labeling tasks from the command line."""

from __future__ import annotations

import click

from hub.cli import CliContext, emit, json_option, pass_cli


def _task_text(t: dict) -> str:
    out = (f"task {t['id']} [{t['state']}] {t['name']}: {t['images_done']}/{t['images_total']} images done, "
           f"backend {t['backend']}, classes {', '.join(t['classes'])}")
    if t.get("result_version_id"):
        out += f"; labeled version {t['result_version_id']}"
    return out


@click.group()
def label():
    """Labeling tasks: create one over a dataset version, follow it, finish it into a new version."""


@label.command("create")
@click.option("--version", "version_id", type=int, required=True, help="Dataset version to label.")
@click.option("--classes", default=None, help="Comma-separated classes (default: the project's targets).")
@click.option("--name", default="")
@click.option("--assignee", "assignees", multiple=True, help="Hub user (repeatable).")
@click.option("--no-pre-annotations", is_flag=True, help="Do not show the version's predictions as suggestions.")
@click.option("--backend", default="builtin", type=click.Choice(["builtin", "label_studio"]))
@json_option
@pass_cli
def create(cli: CliContext, version_id, classes, name, assignees, no_pre_annotations, backend, as_json):
    """Create a labeling task over a dataset version."""
    from hub.labeling import tasks

    task = tasks.create_task(cli.workspace, version_id=version_id,
                             classes=[c for c in (classes or "").split(",") if c.strip()] or None, name=name,
                             assignees=assignees, pre_annotations=not no_pre_annotations, backend=backend)
    emit(task, as_json, _task_text)


@label.command("show")
@click.argument("task_id", type=int, required=False)
@click.option("--project", default=None, help="List the project's tasks.")
@json_option
@pass_cli
def show(cli: CliContext, task_id, project, as_json):
    """One task (progress, state), or with --project all of a project's tasks."""
    from hub.labeling import tasks
    from hub.store import projects as projects_store

    if task_id is None:
        pid = projects_store.find_project(cli.database, project)["id"] if project else None
        emit(tasks.list_tasks(cli.database, pid), as_json,
             lambda d: "\n".join(_task_text(t) for t in d) or "no labeling tasks")
        return
    emit(tasks.get_task(cli.database, task_id), as_json, _task_text)


@label.command("finish")
@click.argument("task_id", type=int)
@click.option("--name", default=None, help="Dataset the labeled version goes to (default: the source's).")
@click.option("--accept-predictions", is_flag=True, help="Images never opened keep their pre-annotations as labels.")
@json_option
@pass_cli
def finish(cli: CliContext, task_id, name, accept_predictions, as_json):
    """Finish a task: its labels become a new dataset version."""
    from hub.labeling import tasks

    emit(tasks.finish_task(cli.workspace, task_id, name=name, accept_predictions=accept_predictions), as_json,
         _task_text)


@label.command("cancel")
@click.argument("task_id", type=int)
@json_option
@pass_cli
def cancel(cli: CliContext, task_id, as_json):
    """Cancel a task (its labels are kept in the task, no version is made)."""
    from hub.labeling import tasks

    emit(tasks.cancel_task(cli.workspace, task_id), as_json, _task_text)


@label.command("sync")
@click.argument("task_id", type=int)
@json_option
@pass_cli
def sync(cli: CliContext, task_id, as_json):
    """Pull the labels of an external backend's task (nothing to do for the built-in annotator)."""
    from hub.labeling import tasks

    emit(tasks.sync_task(cli.workspace, task_id), as_json, lambda d: d.get("note") or _report_text(d))


def _report_text(r: dict) -> str:
    lines = [f"{r.get('images', 0)} image(s), {r.get('boxes', 0)} box(es) saved"]
    for key, what in (("skipped_images", "not in the task, skipped"), ("unannotated_images", "without annotation"),
                      ("duplicate_images", "listed twice")):
        if r.get(key):
            lines.append(f"{len(r[key])} image(s) {what}")
    lines += [f"  {p}" for p in r.get("problems", [])]
    return "\n".join(lines)


@label.command("export")
@click.argument("task_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["ls", "voc", "coco"]), default="ls", show_default=True,
              help="ls: Label Studio JSON (with pre-annotations), voc: VOC zip, coco: COCO JSON.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@json_option
@pass_cli
def export(cli: CliContext, task_id, fmt, out, as_json):
    """Write a task's labels (and pre-annotations) to a file."""
    from hub.labeling import files

    path = files.export_task(cli.workspace, task_id, fmt, out)
    emit({"task_id": task_id, "format": fmt, "out": str(path)}, as_json, f"wrote {path}")


@label.command("import")
@click.argument("task_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_cli
def import_(cli: CliContext, task_id, file, as_json):
    """Import Label Studio's JSON export into a task (matched by data.ymir_sha1), with a report."""
    from pathlib import Path

    from hub.labeling import files

    path = Path(file)
    emit(files.import_label_studio(cli.workspace, task_id, path.read_bytes(), filename=path.name), as_json,
         _report_text)


COMMANDS: list = [label]
