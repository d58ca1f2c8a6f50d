"""The iteration workflow of the YMIR guide, round after round (see :mod:`hub.iterations.steps`).

* :func:`start` stores the preparation (training, mining, validation and test sets, the initial model or
  "train it from the training set", goals) and opens the first round: round 0 (train + test the initial
  model) when none was given, else round 0 only tests the imported model and round 1 follows.
* :func:`run_step` starts a step with its inputs pre-filled from the earlier steps and its parameters taken
  from the last time this step ran (sticky across rounds) overridden by what the caller gives.
* :func:`skip_step` marks a pending (or failed) step skipped.
* :func:`refresh` reads back running jobs / labeling tasks and moves steps on; every page, API call and the
  hub's iteration ticker calls it, so a restarted hub resumes each round where it stood.
* :func:`next_round` opens the next round from the last one's training set and model.

Errors leave the round as it was: a step is only marked running once its job or task exists.
"""

from __future__ import annotations

import copy
import logging

from detkit.errors import BadInput, Conflict, YmirError
from hub.iterations.steps import (
    DEFAULT_PARAMS,
    INITIAL_STEPS,
    ROUND_STEPS,
    STEPS,
    Outcome,
    edge_capture_inputs,
    output_of,
    resolve_inputs,
)
from hub.store import datasets as ds_store
from hub.store import iterations as store
from hub.store import jobs as jobs_store
from hub.store import models as models_store
from hub.store import projects as projects_store
from hub.store.workspace import Workspace

log = logging.getLogger(__name__)


def _require_setup(ws: Workspace, project_id: int) -> dict:
    setup = store.get_setup(ws.database, project_id)
    if setup is None:
        raise BadInput(f"project {project_id} has no iteration set up: start one first (ymir-hub iteration start)")
    return setup


def _check_version(ws: Workspace, project: dict, version_id, role: str, need_gt: bool) -> dict:
    if isinstance(version_id, bool) or not isinstance(version_id, int):
        raise BadInput(f"{role} set: expected a dataset version id, got {version_id!r}")
    v = ds_store.require_ready(ws.database, version_id)
    if v["project_id"] != project["id"]:
        raise BadInput(f"{role} set: version {version_id} belongs to another project")
    if need_gt:
        present = set(ds_store.class_counts(ws.database, version_id).get("gt", {}))
        missing = [t for t in project["targets"] if t not in present]
        if not present:
            raise BadInput(f"{role} set: version {version_id} has no ground-truth boxes")
        if role == "training" and missing:
            raise BadInput(f"training set: version {version_id} lacks the project's target classes "
                           f"{', '.join(missing)}")
    return v


def start(ws: Workspace, project_ref, *, training_version_id: int, mining_version_id: int,
          validation_version_id: int, test_version_id: int, initial_model_id: int | None = None,
          initial_stage: str | None = None, goal_map: float | None = None, goal_train_images: int | None = None,
          params: dict | None = None, user_id: int | None = None) -> dict:
    """Set up the project's iteration and open its first round (Conflict if one is already set up)."""
    project = projects_store.find_project(ws.database, project_ref)
    if store.get_setup(ws.database, project["id"]) is not None:
        raise Conflict(f"project {project['name']!r} already iterates: see `ymir-hub iteration show`")
    if not project["targets"]:
        raise BadInput(f"project {project['name']!r} has no target classes")
    _check_version(ws, project, training_version_id, "training", True)
    _check_version(ws, project, mining_version_id, "mining", False)
    _check_version(ws, project, validation_version_id, "validation", True)
    _check_version(ws, project, test_version_id, "test", True)
    ids = [training_version_id, mining_version_id, validation_version_id, test_version_id]
    if len(set(ids)) != 4:
        raise BadInput("the training, mining, validation and test sets must be four different versions")
    if initial_model_id is not None:
        model = models_store.get_model(ws.database, initial_model_id)
        missing = [t for t in project["targets"] if t not in model["class_names"]]
        if missing:
            raise BadInput(f"initial model {initial_model_id} does not detect the project's targets "
                           f"{', '.join(missing)} (it knows {', '.join(model['class_names'])})")
        if initial_stage and initial_stage not in [s["name"] for s in model["stages"]]:
            raise BadInput(f"initial model {initial_model_id} has no stage {initial_stage!r}")
        initial_stage = initial_stage or model["best_stage"]
    if goal_map is not None and not (isinstance(goal_map, int | float) and 0 < goal_map <= 1):
        raise BadInput(f"goal mAP must be in (0, 1], got {goal_map!r}")
    if goal_train_images is not None and (not isinstance(goal_train_images, int) or goal_train_images < 1):
        raise BadInput(f"goal training-set size must be a positive integer, got {goal_train_images!r}")
    sticky = copy.deepcopy(DEFAULT_PARAMS)
    for step, p in (params or {}).items():
        if step not in sticky or not isinstance(p, dict):
            raise BadInput(f"params: unknown step {step!r} (steps: {', '.join(sticky)})")
        sticky[step].update(p)
    setup = store.save_setup(
        ws.database, project["id"], training_version_id=training_version_id, mining_version_id=mining_version_id,
        validation_version_id=validation_version_id, test_version_id=test_version_id,
        initial_model_id=initial_model_id, initial_stage=initial_stage, goal_map=goal_map,
        goal_train_images=goal_train_images, params=sticky, created_by=user_id,
    )
    store.create_iteration(ws.database, project["id"], round_no=0, training_version_id=training_version_id,
                           mining_version_id=mining_version_id, model_id=initial_model_id,
                           model_stage=initial_stage, steps=list(INITIAL_STEPS))
    log.info("project %s: iteration set up (initial model %s)", project["id"], initial_model_id or "to train")
    return show(ws, project["id"], setup=setup)


def _round(ws: Workspace, project_id: int) -> dict:
    it = store.active_iteration(ws.database, project_id)
    if it is None:
        raise Conflict(f"project {project_id} has no active round: start the next iteration")
    return it


def _next_step(it: dict) -> dict | None:
    """The first step not done or skipped (``None`` when all are)."""
    return next((s for s in it["steps"] if s["state"] not in ("done", "skipped")), None)


def _check_turn(it: dict, step: str) -> dict:
    names = [s["step"] for s in it["steps"]]
    if step not in names:
        raise BadInput(f"round {it['round']} has no step {step!r} (steps: {', '.join(names)})")
    row = next(s for s in it["steps"] if s["step"] == step)
    if row["state"] == "running":
        raise Conflict(f"step {step!r} of round {it['round']} is already running")
    if row["state"] in ("done", "skipped"):
        raise Conflict(f"step {step!r} of round {it['round']} is already {row['state']}")
    current = _next_step(it)
    if current is not None and current["step"] != step:
        raise Conflict(f"step {step!r} comes after {current['step']!r}, which is {current['state']}: "
                       f"run or skip {current['step']!r} first")
    return row


def proposal(ws: Workspace, setup: dict, it: dict, step: str) -> dict:
    """What running ``step`` now would use: inputs from earlier steps (or the error) + sticky parameters."""
    params = copy.deepcopy(setup["params"].get(step) or DEFAULT_PARAMS.get(step, {}))
    try:
        inputs, error = resolve_inputs(setup, it, step), None
    except YmirError as exc:
        inputs, error = {}, exc.message
    if step == "prepare_mining" and not error:
        inputs["edge_capture_version_ids"] = edge_capture_inputs(ws, it, params)
    return {"inputs": inputs, "params": params, "error": error}


def run_step(ws: Workspace, project_ref, step: str, params: dict | None = None, *,
             user_id: int | None = None) -> dict:
    """Start ``step`` of the active round with its pre-filled inputs and ``params`` over the sticky ones."""
    project = projects_store.find_project(ws.database, project_ref)
    setup = _require_setup(ws, project["id"])
    refresh(ws, project["id"])
    it = _round(ws, project["id"])
    _check_turn(it, step)
    if params is not None and not isinstance(params, dict):
        raise BadInput("params: expected an object")
    merged = copy.deepcopy(setup["params"].get(step) or DEFAULT_PARAMS.get(step, {}))
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS.get(step, {}):
            raise BadInput(f"step {step!r} has no parameter {key!r} (parameters: "
                           f"{', '.join(DEFAULT_PARAMS.get(step, {})) or 'none'})")
        merged[key] = value
    inputs = resolve_inputs(setup, it, step)  # BadInput (e.g. a needed step skipped): nothing changes
    started = STEPS[step].start(ws, setup, it, inputs, {**merged, "_user": user_id})
    sticky = dict(setup["params"])
    sticky[step] = merged
    store.update_setup(ws.database, project["id"], params=sticky)
    if started.output is not None and started.job_id is None and started.task_id is None:
        store.update_step(ws.database, it["id"], step, state="done", params=merged, output=started.output,
                          phase="", error=None)
    else:
        store.update_step(ws.database, it["id"], step, state="running", params=merged, job_id=started.job_id,
                          task_id=started.task_id, phase=started.phase, output=started.output or {}, error=None)
    log.info("project %s round %s: step %s started", project["id"], it["round"], step)
    return show(ws, project["id"])


def skip_step(ws: Workspace, project_ref, step: str, *, user_id: int | None = None) -> dict:
    """Skip ``step`` (pending or failed) of the active round."""
    project = projects_store.find_project(ws.database, project_ref)
    _require_setup(ws, project["id"])
    refresh(ws, project["id"])
    it = _round(ws, project["id"])
    _check_turn(it, step)
    if it["round"] == 0:
        raise BadInput("round 0 makes the initial model: its training cannot be skipped")
    store.update_step(ws.database, it["id"], step, state="skipped", error=None, phase="")
    _close_if_complete(ws, store.get_iteration(ws.database, it["id"]))
    return show(ws, project["id"])


def _round_result(it: dict) -> dict:
    trained = output_of(it, "training")
    merged = output_of(it, "merge")
    result = {"training_version_id": (trained or {}).get("training_version_id")
              or (merged or {}).get("version_id") or it["training_version_id"],
              "model_id": (trained or {}).get("model_id") or it["model_id"],
              "model_stage": (trained or {}).get("stage") if trained else it["model_stage"]}
    if trained:
        result.update(test_map50=trained.get("test_map50"), test_map50_95=trained.get("test_map50_95"),
                      test_pred_version_id=trained.get("test_pred_version_id"))
    for step in ("prepare_mining", "mining", "label"):
        out = output_of(it, step)
        if out:
            result[f"{step}_version_id"] = out.get("version_id")
    return result


def _close_if_complete(ws: Workspace, it: dict) -> None:
    if it["state"] == "active" and _next_step(it) is None:
        store.finish_iteration(ws.database, it["id"], _round_result(it))
        log.info("project %s: round %s done", it["project_id"], it["round"])


def refresh(ws: Workspace, project_id: int) -> None:
    """Move the active round's running step on from its job or task (idempotent, safe to call often)."""
    setup = store.get_setup(ws.database, project_id)
    it = store.active_iteration(ws.database, project_id)
    if setup is None or it is None:
        return
    for step in it["steps"]:
        if step["state"] != "running":
            continue
        try:
            outcome = STEPS[step["step"]].poll(ws, setup, it, step)
        except YmirError as exc:
            outcome = Outcome(error=exc.message)
        except Exception as exc:  # a broken job result must fail the step, not the page showing it
            log.exception("iteration %s step %s", it["id"], step["step"])
            outcome = Outcome(error=f"internal error: {type(exc).__name__}: {exc}")
        if outcome.error:
            store.update_step(ws.database, it["id"], step["step"], expect=("running",), state="failed",
                              error=outcome.error)
        elif outcome.next is not None:
            nxt = outcome.next
            store.update_step(ws.database, it["id"], step["step"], expect=("running",), job_id=nxt.job_id,
                              task_id=nxt.task_id, phase=nxt.phase, output=nxt.output or {}, error=None)
        elif outcome.output is not None:
            store.update_step(ws.database, it["id"], step["step"], expect=("running",), state="done",
                              output=outcome.output, phase="", error=None)
    _close_if_complete(ws, store.get_iteration(ws.database, it["id"]))


def refresh_all(ws: Workspace) -> None:
    """:func:`refresh` every project with an active round (the hub's iteration ticker)."""
    for iid in store.active_iteration_ids(ws.database):
        pid = store.get_iteration(ws.database, iid)["project_id"]
        try:
            refresh(ws, pid)
        except Exception:  # one project's trouble must not stop the others
            log.exception("refreshing the iteration of project %s", pid)


def next_round(ws: Workspace, project_ref, *, mining_version_id: int | None = None,
               user_id: int | None = None) -> dict:
    """Open the next round from the last round's training set and model (Conflict while one is active)."""
    project = projects_store.find_project(ws.database, project_ref)
    setup = _require_setup(ws, project["id"])
    refresh(ws, project["id"])
    active = store.active_iteration(ws.database, project["id"])
    if active is not None:
        step = _next_step(active)
        raise Conflict(f"round {active['round']} is not finished: step {step['step']!r} is {step['state']}")
    last = store.list_iterations(ws.database, project["id"])[-1]
    result = last["result"]
    if not result.get("model_id"):
        raise BadInput(f"round {last['round']} ended without a model to mine with")
    mining = mining_version_id or setup["mining_version_id"]
    if mining_version_id is not None:
        _check_version(ws, project, mining_version_id, "mining", False)
        store.update_setup(ws.database, project["id"], mining_version_id=mining_version_id)
    store.create_iteration(ws.database, project["id"], round_no=last["round"] + 1,
                           training_version_id=result["training_version_id"], mining_version_id=mining,
                           model_id=result["model_id"], model_stage=result.get("model_stage"),
                           steps=list(ROUND_STEPS))
    return show(ws, project["id"])


def _describe_round(ws: Workspace, setup: dict, it: dict) -> dict:
    out = {k: it[k] for k in ("id", "round", "state", "training_version_id", "mining_version_id", "model_id",
                              "model_stage", "result", "created_at", "finished_at")}
    current = _next_step(it) if it["state"] == "active" else None
    out["current_step"] = current["step"] if current else None
    out["steps"] = []
    for s in it["steps"]:
        row = {k: s[k] for k in ("step", "state", "phase", "params", "job_id", "task_id", "output", "error")}
        if it["state"] == "active" and s["state"] in ("pending", "failed"):
            row["proposal"] = proposal(ws, setup, it, s["step"])
        row["message"] = _status_message(ws, setup, it, s)
        out["steps"].append(row)
    return out


def _status_message(ws: Workspace, setup: dict, it: dict, s: dict) -> str:
    """A running step's state in words, read without side effects (polling may submit the next phase)."""
    if s["state"] != "running":
        return s["error"] or ""
    try:
        if s["task_id"] is not None:
            from hub.labeling.tasks import get_task

            task = get_task(ws.database, s["task_id"])
            return (f"waiting for labeling task {task['id']} ({task['state']}): "
                    f"{task['images_done']}/{task['images_total']} images done")
        if s["job_id"]:
            job = jobs_store.get_job(ws.database, s["job_id"])
            pct = int(round(100 * (job.get("progress") or 0)))
            return f"{s['phase'] or s['step']}: job {job['id']} {job['state']} {pct}%"
    except YmirError as exc:
        return exc.message
    return ""


def show(ws: Workspace, project_ref, *, setup: dict | None = None) -> dict:
    """The project's iteration: setup, goals against the current round, every round with its steps."""
    project = projects_store.find_project(ws.database, project_ref)
    refresh(ws, project["id"])
    setup = _require_setup(ws, project["id"])
    rounds = [_describe_round(ws, setup, it) for it in store.list_iterations(ws.database, project["id"])]
    active = next((r for r in rounds if r["state"] == "active"), None)
    latest = rounds[-1] if rounds else None
    train_id = (latest["result"].get("training_version_id") if latest and latest["state"] == "done"
                else latest["training_version_id"] if latest else setup["training_version_id"])
    train_images = ds_store.get_version(ws.database, train_id)["images"] if train_id else 0
    best = max((r["result"].get("test_map50") or 0.0 for r in rounds), default=0.0)
    goals = {"map": setup["goal_map"], "train_images": setup["goal_train_images"],
             "current_map": best, "current_train_images": train_images,
             "map_reached": setup["goal_map"] is not None and best >= setup["goal_map"],
             "train_images_reached": setup["goal_train_images"] is not None
             and train_images >= setup["goal_train_images"]}
    return {"project_id": project["id"], "project": project["name"],
            "setup": {k: setup[k] for k in ("training_version_id", "mining_version_id", "validation_version_id",
                                            "test_version_id", "initial_model_id", "initial_stage", "params")},
            "goals": goals, "active_round": active["round"] if active else None,
            "current_step": active["current_step"] if active else None, "rounds": rounds}


def history(ws: Workspace, project_ref) -> dict:
    """Each finished or active round's datasets, model and test mAP (the History tab and its chart)."""
    data = show(ws, project_ref)
    rows = []
    for r in data["rounds"]:
        res = r["result"] if r["state"] == "done" else _round_result(store.get_iteration(ws.database, r["id"]))
        rows.append({"round": r["round"], "state": r["state"], "training_version_id": res["training_version_id"],
                     "mining_version_id": r["mining_version_id"],
                     "mined_version_id": res.get("mining_version_id"),
                     "labeled_version_id": res.get("label_version_id"), "model_id": res.get("model_id"),
                     "test_map50": res.get("test_map50"), "test_map50_95": res.get("test_map50_95")})
    return {"project_id": data["project_id"], "project": data["project"], "goals": data["goals"], "rounds": rows}
