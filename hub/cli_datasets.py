"""``ymir-hub dataset ...``: import, list, show, export and the version operations."""

from __future__ import annotations

import click

from detkit.errors import BadInput
from hub.cli import CliContext, emit, json_option, pass_cli


def _version_text(v: dict) -> str:
    lines = [
        f"version {v['id']}: {v['group_name']} v{v['number']}  [{v['state']}]  project {v['project_name']}",
        f"  {v['images']} images, {v['gt_boxes']} gt boxes, {v['pred_boxes']} pred boxes",
    ]
    for name, c in (v.get("class_counts") or {}).get("gt", {}).items():
        lines.append(f"  {name:<20} {c['boxes']:>7} boxes in {c['images']} images")
    if v.get("error"):
        lines.append(f"  error: {v['error']}")
    skipped = (v.get("report") or {}).get("skipped") or []
    if skipped:
        lines.append(f"  skipped {len(skipped)} file(s):")
        lines += [f"    {s.get('file')}: {s.get('reason')}" for s in skipped[:50]]
        if len(skipped) > 50:
            lines.append(f"    ... and {len(skipped) - 50} more (see --json)")
    return "\n".join(lines)


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, _, value = item.partition("=")
        if not key.strip():
            raise BadInput(f"tag {item!r}: expected KEY=VALUE or KEY")
        out[key.strip()] = value.strip()
    return out


def _split_names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@click.group()
def dataset() -> None:
    """Datasets: import, list, show, export, filter, merge, sample, split."""


@dataset.command("import")
@click.option("--project", required=True, help="Project name or id.")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False), help="A local zip (images/, gt/, pred/).")
@click.option("--url", help="An http(s) URL of a zip.")
@click.option("--path", "shared_path", help="A folder or zip under the workspace's sharing/ folder.")
@click.option("--copy", "copy_id", type=int, help="Copy another dataset version (its id).")
@click.option("--public", "public_id", type=int, help="Import a public dataset version (its id).")
@click.option("--name", default=None, help="Dataset name (default: from the source).")
@click.option(
    "--unknown",
    type=click.Choice(["stop", "ignore", "add"]),
    default="stop",
    show_default=True,
    help="What to do with classes the hub does not know.",
)
@json_option
@pass_cli
def dataset_import(
    cli: CliContext, project, zip_path, url, shared_path, copy_id, public_id, name, unknown, as_json: bool
) -> None:
    """Import a dataset into a project as a new version (progress bar on stderr)."""
    from detkit.progress import progress_bar
    from hub.datasets import service

    given = {
        "zip": zip_path and str(click.format_filename(zip_path)),
        "url": url,
        "path": shared_path,
        "copy": copy_id,
        "public": public_id,
    }
    chosen = {k: v for k, v in given.items() if v not in (None, "")}
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --zip, --url, --path, --copy, --public")
    kind, value = next(iter(chosen.items()))
    if kind == "zip":
        from pathlib import Path

        value = str(Path(value).resolve())
    version = service.start_import(cli.workspace, project, kind=kind, value=value, name=name, unknown=unknown)
    bar = progress_bar(f"import {name or kind}", unit="img", disable=as_json)

    def progress(done: int, total: int, message: str = "") -> None:
        bar.set(done, total or None)

    try:
        result = service.run_import(cli.workspace, version["id"], progress)
    finally:
        bar.close()
    emit(result, as_json, lambda r: _version_text(_show(cli, r["version_id"])))


def _show(cli: CliContext, version_id: int) -> dict:
    from hub.store import datasets as ds_store

    return ds_store.get_version(cli.database, version_id)


@dataset.command("show")
@click.argument("version_id", type=int)
@json_option
@pass_cli
def dataset_show(cli: CliContext, version_id: int, as_json: bool) -> None:
    """Show a version: state, counts per class, the import report."""
    emit(_show(cli, version_id), as_json, _version_text)


@dataset.command("list")
@click.option("--project", default=None, help="Only this project (name or id).")
@json_option
@pass_cli
def dataset_list(cli: CliContext, project: str | None, as_json: bool) -> None:
    """List dataset versions."""
    from hub.store import datasets as ds_store
    from hub.store import projects as project_store

    pid = project_store.find_project(cli.database, project)["id"] if project else None
    rows = ds_store.list_versions(cli.database, project_id=pid)
    emit(
        rows,
        as_json,
        lambda vs: (
            "\n".join(
                f"{v['id']:>5}  {v['project_name']:<16} {v['group_name'] + ' v' + str(v['number']):<28} "
                f"{v['state']:<9} {v['images']:>7} images {v['gt_boxes']:>8} boxes"
                for v in vs
            )
            or "no datasets"
        ),
    )


@dataset.command("export")
@click.argument("version_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["voc", "coco", "yolo"]), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@json_option
@pass_cli
def dataset_export(cli: CliContext, version_id: int, fmt: str, out: str, as_json: bool) -> None:
    """Export a version as a VOC zip, COCO json or YOLO zip."""
    from detkit.progress import progress_bar
    from hub.datasets import ops

    with progress_bar(f"export {version_id}", unit="img", disable=as_json) as bar:

        def progress(done: int, total: int) -> None:
            bar.set(done, total)

        path = ops.export_version(cli.workspace, version_id, fmt, out, progress=progress)
    emit({"version_id": version_id, "format": fmt, "out": str(path)}, as_json, f"wrote {path}")


def _op_result(v: dict) -> dict:
    return {
        "version_id": v["id"],
        "dataset": v["group_name"],
        "number": v["number"],
        "images": v["images"],
        "boxes": v["gt_boxes"],
        "state": v["state"],
    }


@dataset.command("filter")
@click.argument("version_id", type=int)
@click.option("--classes-in", default=None, help="Keep images with a box of these classes (comma-separated).")
@click.option("--classes-out", default=None, help="Drop images with a box of these classes.")
@click.option("--asset-tag", multiple=True, help="KEY=VALUE (or KEY) an image must have; repeatable.")
@click.option("--box-tag", multiple=True, help="KEY=VALUE (or KEY) one of its boxes must have; repeatable.")
@click.option("--name", default=None, help="Put the result in this dataset (default: the source's).")
@json_option
@pass_cli
def dataset_filter(cli: CliContext, version_id, classes_in, classes_out, asset_tag, box_tag, name, as_json):
    """Filter a version by classes and tags into a new version."""
    from hub.datasets import ops

    v = ops.filter_version(
        cli.workspace,
        version_id,
        classes_in=_split_names(classes_in),
        classes_out=_split_names(classes_out),
        asset_tags=_tags(asset_tag),
        box_tags=_tags(box_tag),
        name=name,
    )
    emit(_op_result(v), as_json, _version_text(v))


@dataset.command("merge")
@click.argument("host_id", type=int)
@click.argument("guest_ids", type=int, nargs=-1, required=True)
@click.option(
    "--strategy",
    type=click.Choice(["stop", "host", "guest"]),
    default="stop",
    show_default=True,
    help="When an image is in several inputs: refuse, keep the host's, or take the guest's.",
)
@click.option("--name", default=None, help="Put the result in this dataset (default: the host's).")
@json_option
@pass_cli
def dataset_merge(cli: CliContext, host_id, guest_ids, strategy, name, as_json):
    """Merge guest versions into a new version of the host's dataset."""
    from hub.datasets import ops

    v = ops.merge_versions(cli.workspace, host_id, list(guest_ids), strategy=strategy, name=name)
    emit(_op_result(v), as_json, _version_text(v))


@dataset.command("sample")
@click.argument("version_id", type=int)
@click.option("--count", type=int, default=None, help="Number of images.")
@click.option("--ratio", type=float, default=None, help="Fraction of images, in (0, 1].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", default=None)
@json_option
@pass_cli
def dataset_sample(cli: CliContext, version_id, count, ratio, seed, name, as_json):
    """Seeded random sample of a version into a new version."""
    from hub.datasets import ops

    v = ops.sample_version(cli.workspace, version_id, count=count, ratio=ratio, seed=seed, name=name)
    emit(_op_result(v), as_json, _version_text(v))


@dataset.command("split")
@click.argument("version_id", type=int)
@click.option("--train", type=float, default=0.0, help="Ratio of the train part.")
@click.option("--val", type=float, default=0.0, help="Ratio of the val part.")
@click.option("--test", type=float, default=0.0, help="Ratio of the test part.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", default=None, help="Base name of the part datasets (default: the source's).")
@json_option
@pass_cli
def dataset_split(cli: CliContext, version_id, train, val, test, seed, name, as_json):
    """Seeded split into train/val/test versions (datasets NAME-train, NAME-val, NAME-test)."""
    from hub.datasets import ops

    parts = ops.split_version(
        cli.workspace, version_id, ratios={"train": train, "val": val, "test": test}, seed=seed, name=name
    )
    out = {k: _op_result(v) for k, v in parts.items()}
    emit(out, as_json, "\n".join(_version_text(v) for v in parts.values()))


@dataset.command("publish")
@click.argument("version_id", type=int)
@click.option("--undo", is_flag=True, help="Make the dataset private again.")
@json_option
@pass_cli
def dataset_publish(cli: CliContext, version_id: int, undo: bool, as_json: bool) -> None:
    """Mark a version's dataset public (importable into any project)."""
    from hub.store import datasets as ds_store

    v = ds_store.get_version(cli.database, version_id)
    g = ds_store.set_group_public(cli.database, v["group_id"], not undo)
    emit(g, as_json, f"dataset {g['name']} is {'public' if g['public'] else 'private'}")


COMMANDS = [dataset]
