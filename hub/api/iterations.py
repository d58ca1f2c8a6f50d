"""The iteration workflow (JSON API): set up, show, run/skip a step, next round, history."""

from __future__ import annotations

from flask import g, jsonify

from hub import iterations
from hub.api import bp
from hub.api.util import body, get_field, state


@bp.post("/projects/<ref>/iteration")
def start_iteration(ref: str):
    data = body()
    result = iterations.start(
        state().workspace, ref,
        training_version_id=get_field(data, "training_version_id", int, required=True),
        mining_version_id=get_field(data, "mining_version_id", int, required=True),
        validation_version_id=get_field(data, "validation_version_id", int, required=True),
        test_version_id=get_field(data, "test_version_id", int, required=True),
        initial_model_id=get_field(data, "initial_model_id", int),
        initial_stage=get_field(data, "initial_stage", str),
        goal_map=get_field(data, "goal_map", float), goal_train_images=get_field(data, "goal_train_images", int),
        params=get_field(data, "params", dict), user_id=g.user["id"],
    )
    return jsonify(result), 201


@bp.get("/projects/<ref>/iteration")
def show_iteration(ref: str):
    return jsonify(iterations.show(state().workspace, ref))


@bp.post("/projects/<ref>/iteration/steps/<step>")
def run_iteration_step(ref: str, step: str):
    data = body()
    result = iterations.run_step(state().workspace, ref, step, get_field(data, "params", dict, default={}),
                                 user_id=g.user["id"])
    return jsonify(result), 202


@bp.post("/projects/<ref>/iteration/steps/<step>/skip")
def skip_iteration_step(ref: str, step: str):
    return jsonify(iterations.skip_step(state().workspace, ref, step, user_id=g.user["id"]))


@bp.post("/projects/<ref>/iteration/next")
def next_iteration(ref: str):
    data = body()
    result = iterations.next_round(state().workspace, ref,
                                   mining_version_id=get_field(data, "mining_version_id", int),
                                   user_id=g.user["id"])
    return jsonify(result), 201


@bp.get("/projects/<ref>/iteration/history")
def iteration_history(ref: str):
    return jsonify(iterations.history(state().workspace, ref))
