"""``ymir-hub train | infer | mine | job ... | model ... | image ... | worker``."""

from __future__ import annotations

import time

import click

from detkit.errors import BadInput
from hub.cli import CliContext, emit, json_option, pass_cli


def _ctx(cli: CliContext):
    from hub.jobs.setup import job_context

    return job_context(cli.settings, cli.database)


def _parse_sets(pairs: tuple[str, ...]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise BadInput(f"--set {pair!r}: want key=value")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _wait(cli: CliContext, job_ids: list[str], as_json: bool) -> list[dict]:
    """Run the jobs in this process (unless a hub/worker already took them), with a progress bar."""
    from detkit.progress import progress_bar
    from hub.jobs.setup import build_runner
    from hub.store import jobs as store

    runner = build_runner(cli.settings, cli.database, only_jobs=set(job_ids), poll_interval=0.5)
    first = [store.get_job(cli.database, j) for j in job_ids]
    bar = progress_bar(", ".join(f"{j['kind']} {j['id']}" for j in first)[:60], total=100 * len(job_ids), unit="%")
    try:
        while True:
            runner.tick()
            jobs = [store.get_job(cli.database, j) for j in job_ids]
            bar.set(int(sum(100 * (j["progress"] or 0) for j in jobs)))
            if all(j["state"] in store.FINAL for j in jobs):
                return jobs
            time.sleep(0.5)
    finally:
        bar.close()
        runner.stop()


def _check_done(jobs: list[dict]) -> None:
    failed = [j for j in jobs if j["state"] != "done"]
    if failed:
        j = failed[0]
        raise BadInput(f"job {j['id']} {j['state']}: {j.get('error') or j.get('message')}")


@click.command()
@click.option("--project", required=True, help="Project name or id.")
@click.option("--train", "train_version", required=True, type=int, help="Training dataset version id.")
@click.option("--val", "val_version", required=True, type=int, help="Validation dataset version id.")
@click.option("--image", default=None, help="Executor image (default: the built-in one).")
@click.option("--targets", default=None, help="Comma-separated classes to train (default: all in the training set).")
@click.option("--set", "sets", multiple=True, help="Hyperparameter key=value (repeatable).")
@click.option("--pretrained", default=None, help="Fine-tune from MODEL_ID[:STAGE] of the same image.")
@click.option("--gpus", default=0, type=int, help="GPU count (docker backend only).")
@click.option("--name", default=None, help="Model name.")
@click.option("--timeout", default=None, type=float, help="Fail the job after this many seconds.")
@click.option("--wait", is_flag=True, help="Run/wait until the model is ready.")
@json_option
@pass_cli
def train(cli, project, train_version, val_version, image, targets, sets, pretrained, gpus, name, timeout, wait,
          as_json):
    """Train a model on a dataset version (a job; --wait runs it here with a progress bar)."""
    from hub.jobs.setup import backend_key
    from hub.models_io import model_summary
    from hub.store import models as models_store
    from hub.store import projects as projects_store
    from hub.training import BUILTIN_IMAGE, register_builtin_image, submit_training

    ctx = _ctx(cli)
    register_builtin_image(cli.database)
    proj = projects_store.find_project(cli.database, project)
    pre_id, pre_stage = None, None
    if pretrained:
        ref, _, pre_stage = pretrained.partition(":")
        pre_id, pre_stage = int(ref), (pre_stage or None)
    job = submit_training(
        ctx, project_id=proj["id"], train_version_id=train_version, val_version_id=val_version,
        image=image or BUILTIN_IMAGE, targets=[t for t in (targets or "").split(",") if t.strip()] or None,
        config=_parse_sets(sets), pretrained_model_id=pre_id, pretrained_stage=pre_stage, gpu_count=gpus,
        backend_key=backend_key(cli.settings), name=name, timeout_s=timeout,
    )
    if not wait:
        emit({"job_id": job["id"], "state": job["state"]}, as_json,
             f"job {job['id']} queued (a running hub or 'ymir-hub worker' runs it; or use --wait)")
        return
    (job,) = _wait(cli, [job["id"]], as_json)
    _check_done([job])
    model = models_store.get_model(cli.database, job["result"]["model_id"])
    out = {"job_id": job["id"], **model_summary(model)}
    emit(out, as_json, lambda d: f"model {d['model_id']} ({d['name']} v{d['version']}): best stage "
         f"{d['best_stage']} " + " ".join(f"{k}={v:.3f}" for k, v in d["metrics"].items()))


def _predict(cli, models, datasets, stage, sets, wait, as_json, mode):
    from hub.jobs.setup import backend_key
    from hub.training import register_builtin_image, submit_inference

    ctx = _ctx(cli)
    register_builtin_image(cli.database)
    jobs = []
    for model_id in models:
        jobs += submit_inference(ctx, model_id=model_id, version_ids=list(datasets), stage=stage,
                                 config=_parse_sets(sets), mode=mode, backend_key=backend_key(cli.settings))
    if not wait:
        emit({"job_ids": [j["id"] for j in jobs]}, as_json, lambda d: "queued jobs: " + ", ".join(d["job_ids"]))
        return None
    jobs = _wait(cli, [j["id"] for j in jobs], as_json)
    _check_done(jobs)
    return jobs


@click.command()
@click.option("--model", "models", required=True, multiple=True, type=int, help="Model id (repeatable).")
@click.option("--dataset", "datasets", required=True, multiple=True, type=int, help="Dataset version id (repeatable).")
@click.option("--stage", default=None, help="Model stage (default: the best).")
@click.option("--set", "sets", multiple=True, help="Inference setting key=value (repeatable).")
@click.option("--wait", is_flag=True, help="Run/wait until the prediction versions are ready.")
@json_option
@pass_cli
def infer(cli, models, datasets, stage, sets, wait, as_json):
    """Run models over dataset versions: each pair makes a prediction version."""
    jobs = _predict(cli, models, datasets, stage, sets, wait, as_json, "infer")
    if jobs is not None:
        out = [{"job_id": j["id"], "model_id": j["params"]["model_id"], "source_version_id": j["params"]["version_id"],
                **j["result"]} for j in jobs]
        emit(out, as_json, lambda d: "\n".join(f"prediction version {r['version_id']} ({r['pred_boxes']} boxes)"
                                                for r in d))


@click.group()
def job():
    """List, show, cancel jobs and read their logs."""


def _job_line(j: dict) -> str:
    return f"{j['id']}  {j['kind']:<8} {j['state']:<9} {100 * (j['progress'] or 0):5.1f}%  {j['message'][:60]}"


@job.command("list")
@click.option("--project", default=None)
@click.option("--state", default=None, type=click.Choice(["queued", "running", "done", "failed", "cancelled"]))
@json_option
@pass_cli
def job_list(cli, project, state, as_json):
    from hub.store import jobs as store
    from hub.store import projects as projects_store

    pid = projects_store.find_project(cli.database, project)["id"] if project else None
    jobs = store.list_jobs(cli.database, project_id=pid, states=(state,) if state else None)
    emit(jobs, as_json, lambda d: "\n".join(_job_line(j) for j in d) or "no jobs")


@job.command("show")
@click.argument("job_id")
@json_option
@pass_cli
def job_show(cli, job_id, as_json):
    from hub.store import jobs as store

    j = store.get_job(cli.database, job_id)
    emit(j, as_json, lambda d: _job_line(d) + (f"\nerror ({d['error_code']}): {d['error']}" if d["error"] else ""))


@job.command("cancel")
@click.argument("job_id")
@json_option
@pass_cli
def job_cancel(cli, job_id, as_json):
    from hub.store import jobs as store

    j = store.request_cancel(cli.database, job_id)
    emit({"job_id": j["id"], "state": j["state"], "cancel_requested": True}, as_json,
         f"cancel requested for job {job_id} ({j['state']})")


@job.command("logs")
@click.argument("job_id")
@click.option("--tail", default=0, type=int, help="Only the last N lines.")
@json_option
@pass_cli
def job_logs(cli, job_id, tail, as_json):
    from hub.store import jobs as store

    store.get_job(cli.database, job_id)
    path = cli.settings.home / "jobs" / job_id / "job.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    if tail:
        text = "\n".join(text.splitlines()[-tail:])
    emit({"job_id": job_id, "log": text}, as_json, text)


@click.group()
def model():
    """List, show, import and export models."""


@model.command("list")
@click.option("--project", default=None)
@json_option
@pass_cli
def model_list(cli, project, as_json):
    from hub.models_io import model_summary
    from hub.store import models as models_store
    from hub.store import projects as projects_store

    pid = projects_store.find_project(cli.database, project)["id"] if project else None
    rows = [model_summary(m) for m in models_store.list_models(cli.database, pid)]
    emit(rows, as_json, lambda d: "\n".join(
        f"{m['model_id']:>4}  {m['name']} v{m['version']}  best={m['best_stage']}  "
        + " ".join(f"{k}={v:.3f}" for k, v in m["metrics"].items()) for m in d) or "no models")


@model.command("show")
@click.argument("model_id", type=int)
@json_option
@pass_cli
def model_show(cli, model_id, as_json):
    from hub.store import models as models_store

    emit(models_store.get_model(cli.database, model_id), as_json)


@model.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--project", default=None)
@click.option("--name", default=None)
@click.option("--classes", default=None, help="Class names for an ONNX without metadata (a,b,c).")
@click.option("--image", default="", help="Executor image the model belongs to.")
@json_option
@pass_cli
def model_import(cli, path, project, name, classes, image, as_json):
    """Import a YMIR model package (.tar.gz with ymir-info.yaml) or an ONNX file."""
    from pathlib import Path

    from hub.models_io import import_model, model_summary
    from hub.store import projects as projects_store

    pid = projects_store.find_project(cli.database, project)["id"] if project else None
    m = import_model(cli.database, cli.settings.home, Path(path), project_id=pid, name=name,
                     class_names=[c.strip() for c in classes.split(",")] if classes else None, image=image)
    emit(model_summary(m), as_json, lambda d: f"imported model {d['model_id']} ({d['name']})")


@model.command("export")
@click.argument("model_id", type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@json_option
@pass_cli
def model_export(cli, model_id, out, as_json):
    """Write a model as a YMIR-style tar.gz package."""
    from pathlib import Path

    from hub.models_io import export_model
    from hub.store import models as models_store

    path = export_model(cli.settings.home, models_store.get_model(cli.database, model_id), Path(out))
    emit({"model_id": model_id, "path": str(path)}, as_json, str(path))


@model.command("convert")
@click.argument("model_id", type=int)
@click.option("--targets", default="onnx-int8,openvino-int8", show_default=True,
              help="Comma-separated targets (ymir-convert targets lists them).")
@click.option("--stage", default=None, help="Model stage (default: the best).")
@click.option("--val", "val_version", default=None, type=int, help="Validation version (default: the model's).")
@click.option("--calib", "calib_version", default=None, type=int, help="Calibration version (default: training set).")
@click.option("--max-drop", default=2.0, show_default=True, type=float, help="Reject above this mAP@0.5 drop (points).")
@click.option("--wait", is_flag=True, help="Run/wait until the packages are made.")
@json_option
@pass_cli
def model_convert(cli, model_id, targets, stage, val_version, calib_version, max_drop, wait, as_json):
    """Convert a model stage into edge packages, each validated for accuracy and speed."""
    from hub.conversions import submit_conversion
    from hub.store import model_packages as packages_store

    job = submit_conversion(_ctx(cli), model_id=model_id, targets=[t.strip() for t in targets.split(",") if t.strip()],
                            stage=stage, val_version_id=val_version, calib_version_id=calib_version,
                            max_drop=max_drop)
    if not wait:
        emit({"job_id": job["id"], "state": job["state"]}, as_json, f"job {job['id']} queued")
        return
    (job,) = _wait(cli, [job["id"]], as_json)
    _check_done([job])
    rows = [packages_store.get_package(cli.database, pid) for pid in job["result"]["packages"]]
    emit({"job_id": job["id"], "packages": rows}, as_json, lambda d: "\n".join(_package_line(p) for p in d["packages"]))


def _package_line(p: dict) -> str:
    acc, speed = p["accuracy"], p["speed"]
    return (f"{p['id']:>4}  {p['target']:<14} {p['status']:<10} mAP50={acc.get('mAP50', float('nan')):.4f} "
            f"(Δ {acc.get('delta_mAP50', float('nan')):+.4f})  p50={speed.get('latency_ms_p50', float('nan')):.2f} ms  "
            f"{speed.get('speedup_vs_source', float('nan')):.2f}x  {p['size_bytes'] / 1e6:.2f} MB")


@model.command("packages")
@click.argument("model_id", type=int)
@json_option
@pass_cli
def model_packages(cli, model_id, as_json):
    """List a model's packages with precision, size, mAP delta and latency."""
    from hub.store import model_packages as packages_store
    from hub.store import models as models_store

    models_store.get_model(cli.database, model_id)
    rows = packages_store.list_packages(cli.database, model_id)
    emit(rows, as_json, lambda d: "\n".join(_package_line(p) for p in d) or "no packages")


@click.group()
def image():
    """Executor images (admin): list, add, link a mining image."""


@image.command("list")
@json_option
@pass_cli
def image_list(cli, as_json):
    from hub.store import executor_images as images_store
    from hub.training import register_builtin_image

    register_builtin_image(cli.database)
    rows = images_store.list_images(cli.database)
    emit(rows, as_json, lambda d: "\n".join(f"{r['name']:<30} {r['docker_ref'] or '-':<35} "
                                            f"{'local' if r['local_command'] else 'docker-only'}" for r in d))


@image.command("add")
@click.argument("name")
@click.option("--docker", "docker_ref", default="", help="Docker reference of the image.")
@click.option("--local-command", default="", help="Command that runs it as a local process (space separated).")
@click.option("--description", default="")
@json_option
@pass_cli
def image_add(cli, name, docker_ref, local_command, description, as_json):
    """Register an executor image; with a docker engine its /img-man templates are read."""
    from hub.images import read_img_man
    from hub.store import executor_images as images_store

    if not docker_ref and not local_command:
        raise BadInput("give --docker REF and/or --local-command CMD")
    manifest, templates = read_img_man(cli.settings, docker_ref) if docker_ref else ({}, {})
    row = images_store.upsert_image(cli.database, name=name, docker_ref=docker_ref,
                                    local_command=local_command.split() if local_command else [],
                                    description=description, manifest=manifest, templates=templates)
    emit(row, as_json, f"registered image {name}")


@image.command("copy")
@click.argument("name")
@click.argument("new_name")
@json_option
@pass_cli
def image_copy(cli, name, new_name, as_json):
    """Copy a public image under a new name (to edit its templates or link it)."""
    from hub.store import executor_images as images_store
    from hub.training import register_builtin_image

    register_builtin_image(cli.database)
    emit(images_store.copy_image(cli.database, name, new_name), as_json, f"copied {name} to {new_name}")


@image.command("public")
@click.argument("name")
@click.option("--off", is_flag=True, help="Make it private again.")
@json_option
@pass_cli
def image_public(cli, name, off, as_json):
    """Mark an image public (others may then copy it)."""
    from hub.store import executor_images as images_store

    row = images_store.set_public(cli.database, name, not off)
    emit(row, as_json, f"{name} is {'public' if row['is_public'] else 'private'}")


@image.command("link")
@click.argument("training")
@click.argument("mining")
@json_option
@pass_cli
def image_link(cli, training, mining, as_json):
    """Associate a training image with the mining image to use for its models."""
    from hub.store import executor_images as images_store

    emit(images_store.link_mining_image(cli.database, training, mining), as_json, f"{training} mines with {mining}")


@click.command()
@click.option("--once", is_flag=True, help="One scheduling step, then exit.")
@pass_cli
def worker(cli, once):
    """Run queued jobs of this workspace (instead of, or beside, a hub server)."""
    from hub.jobs.setup import build_runner

    runner = build_runner(cli.settings, cli.database)
    if once:
        runner.tick()
        return
    click.echo(f"worker on {cli.settings.home} (backend {runner._backend_key}); Ctrl-C to stop")
    runner.start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()


COMMANDS = [train, infer, job, model, image, worker]  # ``mine``: hub.cli_mining
