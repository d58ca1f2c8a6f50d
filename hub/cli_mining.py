"""``ymir-hub mine`` and ``ymir-hub mining prepare | algorithms | show``."""

from __future__ import annotations

import json

import click

from detkit.errors import BadInput
from hub.cli import CliContext, emit, json_option, pass_cli
from hub.cli_jobs import _check_done, _ctx, _parse_sets, _predict, _wait


def _mined_text(d: dict) -> str:
    lines = [f"mined version {d['version_id']}: top {d['topk']} of {d['pool']} by {d['algorithm']}"]
    lines += [f"  {i + 1:>4}  {sha1}  {score:.4f}" for i, (sha1, score) in enumerate(d.get("top", []))]
    return "\n".join(lines)


def mine_topk(cli: CliContext, *, model_id, version_ids, stage, topk, algorithm, class_balanced, pre_annotations,
              name, config, wait, as_json):
    """Queue (and with ``wait`` run) a mining job whose result is a version of the top-k."""
    from detkit import scoring
    from hub.jobs.setup import backend_key
    from hub.mining import submit_mining
    from hub.training import register_builtin_image

    register_builtin_image(cli.database)
    job = submit_mining(_ctx(cli), model_id=model_id, version_ids=version_ids, stage=stage, topk=topk,
                        algorithm=algorithm or scoring.DEFAULT_ALGORITHM, class_balanced=class_balanced,
                        pre_annotations=pre_annotations, config=config, name=name,
                        backend_key=backend_key(cli.settings))
    if not wait:
        emit({"job_id": job["id"], "state": job["state"]}, as_json,
             f"mining job {job['id']} queued (a running hub or 'ymir-hub worker' runs it; or use --wait)")
        return
    (job,) = _wait(cli, [job["id"]], as_json)
    _check_done([job])
    emit({"job_id": job["id"], **job["result"]}, as_json, _mined_text)


@click.command()
@click.option("--model", "models", required=True, multiple=True, type=int, help="Model id.")
@click.option("--dataset", "datasets", required=True, multiple=True, type=int, help="Candidate version id.")
@click.option("--stage", default=None)
@click.option("--topk", default=None, type=int,
              help="Keep the K most useful images as a new dataset version (one --model).")
@click.option("--algorithm", default=None, help="Mining algorithm (ymir-hub mining algorithms; default aldd).")
@click.option("--class-balanced", is_flag=True, help="Re-rank so rare predicted classes are picked early.")
@click.option("--no-pre-annotations", is_flag=True, help="Do not attach the model's predictions to the version.")
@click.option("--name", default=None, help="Dataset the mined version goes to (default: mined).")
@click.option("--set", "sets", multiple=True)
@click.option("--wait", is_flag=True)
@json_option
@pass_cli
def mine(cli, models, datasets, stage, topk, algorithm, class_balanced, no_pre_annotations, name, sets, wait,
         as_json):
    """Score candidate images by how useful labeling them would be; with --topk, make a version of the best."""
    if topk is not None:
        if len(models) != 1:
            raise BadInput("--topk mines with one model: give one --model")
        return mine_topk(cli, model_id=models[0], version_ids=list(datasets), stage=stage, topk=topk,
                         algorithm=algorithm, class_balanced=class_balanced,
                         pre_annotations=not no_pre_annotations, name=name, config=_parse_sets(sets), wait=wait,
                         as_json=as_json)
    if algorithm:
        sets = (*sets, f"mining_algorithm={algorithm}")
    jobs = _predict(cli, models, datasets, stage, sets, wait, as_json, "mine")
    if jobs is not None:
        out = [{"job_id": j["id"], "scores": j["result"]["scores"]} for j in jobs]
        emit(out, as_json, lambda d: "\n".join(f"{s}\t{v:.4f}" for r in d for s, v in r["scores"]))


@click.group()
def mining():
    """Mining data: prepare a candidate pool, list the mining algorithms, show a mined version."""


@mining.command("prepare")
@click.option("--project", required=True, help="Project name or id.")
@click.option("--dataset", "datasets", required=True, multiple=True, type=int, help="Mining set version (repeatable).")
@click.option("--exclude", "excludes", multiple=True, type=int,
              help="Version whose assets are already used (training/validation/test; repeatable).")
@click.option("--near-dup", "near_dup", default=4, type=int, show_default=True,
              help="Near-duplicate threshold: max differing bits of the 64-bit perceptual hash; -1 turns it off.")
@click.option("--class-in", "classes_in", multiple=True, help="Keep images with a box of this class (GT or predicted).")
@click.option("--class-out", "classes_out", multiple=True, help="Drop images with a box of this class.")
@click.option("--tag", "tags", multiple=True, help="Keep images whose asset tag KEY=VALUE (or KEY) matches.")
@click.option("--sample", default=None, type=int, help="Keep a seeded random sample of N images.")
@click.option("--seed", default=0, type=int)
@click.option("--chunk-size", default=None, type=int, help="Keep one chunk of N images ...")
@click.option("--chunk-index", default=0, type=int, help="... the I-th (0-based).")
@click.option("--name", default=None, help="Dataset the prepared version goes to (default: mining data).")
@click.option("--wait", is_flag=True)
@json_option
@pass_cli
def prepare(cli: CliContext, project, datasets, excludes, near_dup, classes_in, classes_out, tags,
            sample, seed, chunk_size, chunk_index, name, wait, as_json):
    """Make the candidate pool: used assets, duplicates and filtered images dropped, with a report."""
    from hub.mining import submit_prepare
    from hub.store import projects as projects_store

    pid = projects_store.find_project(cli.database, project)["id"]
    asset_tags = {}
    for t in tags:
        key, _, value = t.partition("=")
        asset_tags[key.strip()] = value.strip()
    job = submit_prepare(_ctx(cli), project_id=pid, version_ids=list(datasets), exclude_version_ids=list(excludes),
                         near_dup_threshold=None if near_dup < 0 else near_dup,
                         classes_in=list(classes_in), classes_out=list(classes_out), asset_tags=asset_tags,
                         sample=sample, seed=seed, chunk_size=chunk_size, chunk_index=chunk_index, name=name)
    if not wait:
        emit({"job_id": job["id"], "state": job["state"]}, as_json, f"preparation job {job['id']} queued")
        return
    (job,) = _wait(cli, [job["id"]], as_json)
    _check_done([job])
    emit({"job_id": job["id"], **job["result"]}, as_json, _report_text)


def _report_text(d: dict) -> str:
    r = d["report"]
    dropped = ", ".join(f"{k} {v}" for k, v in r["dropped"].items() if v) or "nothing"
    return f"prepared version {d['version_id']}: {r['kept']} of {r['input']} images kept; dropped: {dropped}"


@mining.command("algorithms")
@json_option
@pass_cli
def algorithms(cli: CliContext, as_json):
    """The mining algorithms: what each needs, its extra inferences per image and its formula."""
    from hub.mining.catalog import algorithm_table

    emit(algorithm_table(), as_json, lambda d: "\n".join(
        f"{a['name']:<17} needs {a['needs']:<8} +{a['extra_inferences']} inferences  {a['formula']}"
        + ("  (default)" if a["default"] else "") for a in d))


@mining.command("show")
@click.argument("version_id", type=int)
@click.option("--limit", default=20, type=int, show_default=True)
@json_option
@pass_cli
def show(cli: CliContext, version_id, limit, as_json):
    """A mined version's images by rank: score, predicted boxes."""
    from hub.store import datasets as datasets_store
    from hub.store import mining as mining_store

    v = datasets_store.get_version(cli.database, version_id)
    rows = mining_store.mined_assets(cli.database, version_id, limit=limit)
    emit({"version_id": version_id, "source": v["source"], "assets": rows}, as_json, lambda d: "\n".join(
        [f"version {version_id}: {json.dumps(d['source'])}"]
        + [f"  {a['rank'] or '-':>4}  {a['sha1']}  {a['score'] if a['score'] is not None else '-'}  "
           f"{a['pred_boxes']} predicted boxes" for a in d["assets"]]))


COMMANDS: list = [mine, mining]
