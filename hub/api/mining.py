"""Mining (JSON API): prepare a candidate pool, run a mining job, list them, read a mined version by rank."""

from __future__ import annotations

from flask import g, jsonify

from detkit import scoring
from detkit.errors import BadInput
from hub.api import bp
from hub.api.util import body, database, get_field, int_list, query_int, state, str_list
from hub.jobs.setup import backend_key, job_context
from hub.mining import submit_mining, submit_prepare
from hub.mining.catalog import algorithm_table
from hub.store import jobs as jobs_store
from hub.store import mining as mining_store
from hub.store import projects as projects_store

MINING_KINDS = ("mining", "mining_prepare")


def _ctx():
    return job_context(state().settings, database())


def _ids(data: dict, name: str, required: bool = False) -> list[int]:
    if data.get(name) is None and required:
        raise BadInput(f"field '{name}' is required")
    return int_list(data, name, required=False)


def _public(job: dict) -> dict:
    from hub.api.jobs import _job_public

    return _job_public(job)


@bp.get("/mining/algorithms")
def mining_algorithms():
    return jsonify({"algorithms": algorithm_table(), "default": scoring.DEFAULT_ALGORITHM})


@bp.post("/projects/<ref>/mining/prepare")
def prepare_mining(ref: str):
    project = projects_store.find_project(database(), ref)
    data = body()
    near = data.get("near_dup_threshold", 4)
    job = submit_prepare(
        _ctx(), project_id=project["id"], version_ids=_ids(data, "version_ids", True),
        exclude_version_ids=_ids(data, "exclude_version_ids"),
        exact_dedup=bool(get_field(data, "exact_dedup", bool, default=True)),
        near_dup_threshold=near, classes_in=str_list(data, "classes_in") or [],
        classes_out=str_list(data, "classes_out") or [], asset_tags=get_field(data, "asset_tags", dict),
        sample=get_field(data, "sample", int), seed=get_field(data, "seed", int, default=0),
        chunk_size=get_field(data, "chunk_size", int), chunk_index=get_field(data, "chunk_index", int, default=0),
        name=get_field(data, "name", str), created_by=g.user["id"],
    )
    return jsonify(_public(job)), 202


@bp.post("/projects/<ref>/mining")
def start_mining(ref: str):
    from hub.training import register_builtin_image

    project = projects_store.find_project(database(), ref)
    data = body()
    register_builtin_image(database())
    job = submit_mining(
        _ctx(), model_id=get_field(data, "model_id", int, required=True), stage=get_field(data, "stage", str),
        version_ids=_ids(data, "version_ids", True), topk=get_field(data, "topk", int, required=True),
        algorithm=get_field(data, "algorithm", str, default=scoring.DEFAULT_ALGORITHM),
        class_balanced=bool(get_field(data, "class_balanced", bool, default=False)),
        pre_annotations=bool(get_field(data, "pre_annotations", bool, default=True)),
        config=get_field(data, "config", dict, default={}), name=get_field(data, "name", str),
        backend_key=backend_key(state().settings), created_by=g.user["id"], project_id=project["id"],
    )
    return jsonify(_public(job)), 202


@bp.get("/projects/<ref>/mining")
def list_mining(ref: str):
    project = projects_store.find_project(database(), ref)
    jobs = [j for kind in MINING_KINDS for j in jobs_store.list_jobs(database(), project_id=project["id"], kind=kind)]
    jobs.sort(key=lambda j: j["created_at"], reverse=True)
    return jsonify({"jobs": [_public(j) for j in jobs]})


@bp.get("/mining/versions/<int:version_id>")
def mined_version(version_id: int):
    from hub.store import datasets as datasets_store

    v = datasets_store.get_version(database(), version_id)
    offset = query_int("offset", 0)
    limit = query_int("limit", 60, minimum=1, maximum=1000)
    return jsonify({"version": v, "offset": offset, "limit": limit,
                    "assets": mining_store.mined_assets(database(), version_id, offset=offset, limit=limit)})
