"""``ymir-hub device ... | algorithm ... | deploy | deployment ...``: the fleet from the command line.

The CLI writes rows in the workspace; the hub server's fleet service (which holds the broker
connection) sends desired states and runs the rollout. ``deploy --wait`` shows the rollout's
progress until it finishes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from detkit.errors import BadInput
from hub.cli import CliContext, emit, json_option, pass_cli


def _owner_id(cli: CliContext, username: str | None) -> int | None:
    if not username:
        return None
    from hub.store import users as user_store

    return user_store.get_user_by_name(cli.database, username)["id"]


# --- devices --------------------------------------------------------------------------------------


@click.group()
def device() -> None:
    """Devices: provision, list, show, rotate token, remove."""


@device.command("add")
@click.argument("device_id")
@click.option("--name", default="", help="Display name (default: the id).")
@click.option("--tags", default="", help="Comma-separated tags (deploy to a tag).")
@click.option("--project", default=None, help="Project (name or id) whose edge-captures dataset gets its frames.")
@json_option
@pass_cli
def device_add(cli: CliContext, device_id: str, name: str, tags: str, project: str | None, as_json: bool) -> None:
    """Provision a device; its token is printed once (the hub keeps only a hash)."""
    from hub.fleet import devices
    from hub.store import projects as project_store

    pid = project_store.find_project(cli.database, project)["id"] if project else None
    from hub.fleet.algorithms import public_key

    d = devices.provision(cli.database, device_id, name, [t.strip() for t in tags.split(",") if t.strip()], pid)
    d["hub_public_key"] = public_key(cli.settings)
    emit(d, as_json, lambda d: f"device {d['id']} provisioned; token (shown once): {d['token']}\n"
                               f"hub public key (the agent's hub_public_key): {d['hub_public_key']}")


@device.command("list")
@click.option("--tag", default=None, help="Only devices with this tag.")
@json_option
@pass_cli
def device_list(cli: CliContext, tag: str | None, as_json: bool) -> None:
    """List devices with presence, algorithms, p95 latency and outbox depth."""
    from hub.fleet import devices
    from hub.store import fleet as fleet_store

    rows = devices.summaries(cli.database, fleet_store.list_devices(cli.database, tag))

    def text(rows):
        return "\n".join(
            f"{d['id']:<20} {'online' if d['online'] else 'offline':<8} rev {d['desired_revision']:<11} "
            f"p95 {d['p95_ms'] if d['p95_ms'] is not None else '-'} ms  outbox {d['outbox_depth'] if d['outbox_depth'] is not None else '-'}  "
            + ", ".join(f"{a['name']}:{a['state']}" for a in d["algorithms"]) for d in rows) or "no devices"

    emit(rows, as_json, text)


@device.command("show")
@click.argument("device_id")
@json_option
@pass_cli
def device_show(cli: CliContext, device_id: str, as_json: bool) -> None:
    """A device with its algorithms, reported states, deployment history and commands."""
    from hub.fleet import devices

    emit(devices.detail(cli.database, device_id), as_json)


@device.command("token")
@click.argument("device_id")
@json_option
@pass_cli
def device_token(cli: CliContext, device_id: str, as_json: bool) -> None:
    """Give a device a new token (the old one stops working); printed once."""
    from hub.fleet import devices

    emit(devices.rotate_token(cli.database, device_id), as_json, lambda d: d["token"])


@device.command("remove")
@click.argument("device_id")
@json_option
@pass_cli
def device_remove(cli: CliContext, device_id: str, as_json: bool) -> None:
    """Remove a device and its rows (a running hub clears its retained topics when removed from the API/page)."""
    from hub.fleet import devices

    devices.remove(cli.database, device_id)
    emit({"deleted": device_id}, as_json, f"device {device_id} removed")


# --- algorithms -----------------------------------------------------------------------------------


@click.group()
def algorithm() -> None:
    """Algorithms: publish a model stage or a package, list, review."""


@algorithm.command("publish")
@click.option("--model", "model_id", type=int, default=None, help="Model id: package its stage's ONNX.")
@click.option("--stage", default=None, help="Model stage (default: the best one).")
@click.option("--package", "package_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A model package zip (ymir-convert package ...).")
@click.option("--name", default=None, help="Device-side name (default: the model's or the package's).")
@click.option("--title", default="")
@click.option("--project", default=None, help="Project for a package's edge captures (name or id).")
@click.option("--owner", default=None, help="User who owns it (default: none, visible to admins).")
@json_option
@pass_cli
def algorithm_publish(cli: CliContext, model_id, stage, package_path, name, title, project, owner, as_json) -> None:
    """Publish a model stage or a package zip as an algorithm."""
    from hub.fleet import algorithms
    from hub.store import projects as project_store

    if (model_id is None) == (package_path is None):
        raise BadInput("give exactly one of --model or --package")
    owner_id = _owner_id(cli, owner)
    cli.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    if model_id is not None:
        a = algorithms.publish_model(cli.database, cli.settings, model_id, stage=stage, name=name, title=title,
                                     owner_id=owner_id)
    else:
        pid = project_store.find_project(cli.database, project)["id"] if project else None
        a = algorithms.publish_package(cli.database, cli.settings, Path(package_path), name=name, title=title,
                                       project_id=pid, owner_id=owner_id)
    emit(a, as_json, lambda a: f"algorithm {a['id']}: {a['label']} ({a['size']} bytes, sha256 {a['sha256'][:12]})")


@algorithm.command("list")
@click.option("--scope", type=click.Choice(["all", "public", "pending"]), default="all", show_default=True)
@json_option
@pass_cli
def algorithm_list(cli: CliContext, scope: str, as_json: bool) -> None:
    """List algorithms."""
    from hub.store import fleet_algorithms as algo_store

    rows = algo_store.list_algorithms(cli.database, visibility=None if scope == "all" else scope)
    emit(rows, as_json, lambda rows: "\n".join(
        f"{a['id']:>4}  {a['label']:<24} {a['visibility']:<9} {a['backend']} {a['precision']}  {', '.join(a['class_names'])}"
        for a in rows) or "no algorithms")


@algorithm.command("review")
@click.argument("algorithm_id", type=int)
@click.option("--approve/--reject", required=True)
@click.option("--note", default="")
@click.option("--admin", "admin_name", default="admin", show_default=True, help="Reviewing administrator.")
@json_option
@pass_cli
def algorithm_review(cli: CliContext, algorithm_id: int, approve: bool, note: str, admin_name: str, as_json) -> None:
    """Approve or reject an algorithm waiting for review (sets it pending first when it is private)."""
    from hub.fleet import algorithms
    from hub.store import fleet_algorithms as algo_store
    from hub.store import users as user_store

    reviewer = user_store.get_user_by_name(cli.database, admin_name)
    if algo_store.get_algorithm(cli.database, algorithm_id)["visibility"] in ("private", "rejected"):
        algo_store.set_visibility(cli.database, algorithm_id, "pending")
    a = algorithms.review(cli.database, algorithm_id, approve, note, reviewer)
    emit(a, as_json, f"{a['label']} is {a['visibility']}")


# --- deployments ----------------------------------------------------------------------------------


def _dep_text(d: dict) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in d["counts"].items())
    return (f"deployment {d['id']}: {d['algorithm_name']} v{d['algorithm_version']} -> {d['target']}  {d['state']}  "
            f"batch {d['current_batch'] + 1}/{d['batches']}  [{counts}] {d['message']}")


def _wait(cli: CliContext, dep_id: int, timeout: float) -> dict:
    from detkit.progress import progress_bar
    from hub.store import fleet_deployments as dep_store

    dep = dep_store.get_deployment(cli.database, dep_id)
    total = sum(dep["counts"].values())
    deadline = time.monotonic() + timeout
    with progress_bar(f"deployment {dep_id}", total=total, unit="device") as bar:
        while True:
            dep = dep_store.get_deployment(cli.database, dep_id)
            done = sum(n for s, n in dep["counts"].items() if s not in ("pending", "sent", "downloading", "verifying",
                                                                        "loading"))
            bar.set(done)
            if dep["state"] not in ("running", "rolling_back") or time.monotonic() > deadline:
                return dep
            time.sleep(0.5)


@click.command()
@click.argument("algorithm_id", type=int)
@click.option("--target", required=True, help="device:ID, tag:NAME or all.")
@click.option("--backend", default=None, type=click.Choice(["onnxruntime", "openvino", "tensorrt"]))
@click.option("--conf", type=float, default=None, help="Confidence threshold on the device.")
@click.option("--name", default=None, help="Device-side deployment name (default: the algorithm's).")
@click.option("--batch-percent", type=float, default=None, help="Staged rollout: batch size in % of devices (100).")
@click.option("--success-threshold", type=float, default=None, help="Healthy share that opens the next batch (1.0).")
@click.option("--max-failures", type=int, default=None, help="Failures that abort and roll back (1).")
@click.option("--wait", is_flag=True, help="Follow the rollout until it finishes (a hub server must be running).")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds --wait waits.")
@json_option
@pass_cli
def deploy(cli: CliContext, algorithm_id, target, backend, conf, name, batch_percent, success_threshold, max_failures,
           wait, timeout, as_json) -> None:
    """Deploy an algorithm to a device, a tag or all devices (the running hub server rolls it out)."""
    from hub.fleet import deployments

    dep, created = deployments.deploy(
        cli.database, algorithm_id=algorithm_id, target=target, backend=backend,
        settings={"conf": conf} if conf is not None else {}, name=name, batch_percent=batch_percent,
        success_threshold=success_threshold, max_failures=max_failures)
    if wait:
        dep = _wait(cli, dep["id"], timeout)
    emit(dep, as_json, _dep_text)
    if wait and dep["state"] in ("aborted", "rolled_back"):
        sys.exit(1)


@click.group()
def deployment() -> None:
    """Deployments: list, show, roll back."""


@deployment.command("list")
@json_option
@pass_cli
def deployment_list(cli: CliContext, as_json: bool) -> None:
    """List deployments, newest first."""
    from hub.store import fleet_deployments as dep_store

    rows = dep_store.list_deployments(cli.database)
    emit(rows, as_json, lambda rows: "\n".join(_dep_text(d) for d in rows) or "no deployments")


@deployment.command("show")
@click.argument("deployment_id", type=int)
@json_option
@pass_cli
def deployment_show(cli: CliContext, deployment_id: int, as_json: bool) -> None:
    """A deployment with each device's state."""
    from hub.store import fleet_deployments as dep_store

    dep = {**dep_store.get_deployment(cli.database, deployment_id), "devices": dep_store.rows(cli.database,
                                                                                              deployment_id)}
    emit(dep, as_json, lambda d: _dep_text(d) + "".join(
        f"\n  {r['device_id']:<20} batch {r['batch'] + 1}  {r['state']:<12} rev {r['revision'] or '-'}  {r['reason']}"
        for r in d["devices"]))


@deployment.command("rollback")
@click.argument("deployment_id", type=int)
@json_option
@pass_cli
def deployment_rollback(cli: CliContext, deployment_id: int, as_json: bool) -> None:
    """Roll back a whole deployment: each device gets what it ran before (idempotent)."""
    from hub.fleet import deployments

    dep = deployments.rollback(cli.database, deployment_id)
    emit(dep, as_json, _dep_text)


COMMANDS = [device, algorithm, deploy, deployment]
