"""The steps of an iteration round: what each one needs, how it starts, how its outcome is read back.

A round runs ``prepare_mining -> mining -> label -> merge -> training`` (round 0, when no initial model was
imported, only ``training``). Each step is an entry of :data:`STEPS`: ``start`` submits the job (or creates the
labeling task, or merges at once) from the step's resolved inputs and parameters; ``poll`` turns a finished
job or task into the step's output. Inputs come from earlier steps' outputs; a skipped step's output falls
back where the guide allows it (mining without preparation mines the raw mining set; training without a merge
retrains the round's training set) and is an error where it cannot (labeling needs mined data, a merge needs
labeled data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from detkit.errors import BadInput
from hub.jobs.setup import backend_key, job_context
from hub.store import jobs as jobs_store
from hub.store.workspace import Workspace

log = logging.getLogger(__name__)

ROUND_STEPS = ("prepare_mining", "mining", "label", "merge", "training")
INITIAL_STEPS = ("training",)
# score threshold of the test-set inference a round's test mAP is computed from (the trainer validates at 0.01 too)
TEST_CONF_THRESHOLD = 0.01

#: parameters a user sets per step; they stick across rounds (inputs such as version ids do not)
DEFAULT_PARAMS: dict[str, dict] = {
    "prepare_mining": {"exact_dedup": True, "near_dup_threshold": 4, "sample": None, "classes_in": [],
                       "classes_out": [], "edge_captures": True},
    "mining": {"algorithm": "aldd", "topk": 50, "class_balanced": False, "pre_annotations": True, "config": {}},
    "label": {"backend": "builtin", "assignees": []},
    "merge": {"strategy": "host"},
    "training": {"config": {}, "pretrained": True},
}


@dataclass
class Started:
    """What starting a step produced: a job to watch, a labeling task to wait for, or the output at once."""

    job_id: str | None = None
    task_id: int | None = None
    phase: str = ""
    output: dict | None = None


@dataclass
class Outcome:
    """A poll's answer: still running (``None`` fields), done with ``output``, failed with ``error``,
    or moved to a new phase (``next``: another :class:`Started`)."""

    output: dict | None = None
    error: str | None = None
    next: Started | None = None
    message: str = ""


@dataclass
class StepDef:
    start: Callable[[Workspace, dict, dict, dict, dict], Started]  # (ws, setup, round, inputs, params)
    poll: Callable[[Workspace, dict, dict, dict], Outcome]  # (ws, setup, round, step row)


def _ctx(ws: Workspace):
    return job_context(ws.settings, ws.database)


def output_of(it: dict, step: str) -> dict | None:
    """The output of ``step`` in round ``it``; ``None`` when skipped or not there."""
    for s in it["steps"]:
        if s["step"] == step:
            return s["output"] if s["state"] == "done" else None
    return None


def _state_of(it: dict, step: str) -> str | None:
    return next((s["state"] for s in it["steps"] if s["step"] == step), None)


def resolve_inputs(setup: dict, it: dict, step: str) -> dict:
    """The inputs ``step`` takes from the setup and the round's earlier steps (BadInput when one is missing)."""
    if step == "prepare_mining":
        return {"version_ids": [it["mining_version_id"]],
                "exclude_version_ids": sorted({it["training_version_id"], setup["validation_version_id"],
                                               setup["test_version_id"]})}
    if step == "mining":
        prepared = output_of(it, "prepare_mining")
        if it["model_id"] is None:
            raise BadInput(f"round {it['round']} has no model to mine with")
        return {"version_ids": [prepared["version_id"] if prepared else it["mining_version_id"]],
                "model_id": it["model_id"], "stage": it["model_stage"]}
    if step == "label":
        mined = output_of(it, "mining")
        if mined is None:
            raise BadInput("step 'label' labels the mined data, but step 'mining' was skipped: "
                           "run the mining step, or skip labeling too")
        return {"version_id": mined["version_id"]}
    if step == "merge":
        labeled = output_of(it, "label")
        if labeled is None:
            raise BadInput("step 'merge' merges the labeled data into the training set, but step 'label' was "
                           f"{_state_of(it, 'label')}: label the mined data, or skip the merge too")
        return {"host_id": it["training_version_id"], "guest_ids": [labeled["version_id"]]}
    if step == "training":
        merged = output_of(it, "merge")
        return {"train_version_id": merged["version_id"] if merged else it["training_version_id"],
                "val_version_id": setup["validation_version_id"], "test_version_id": setup["test_version_id"]}
    raise BadInput(f"unknown step {step!r}")


# -- job-carried steps -------------------------------------------------------------------------------------
def _job_outcome(ws: Workspace, job_id: str, what: str) -> Outcome | None:
    """``None`` while the job runs; an error Outcome when it failed; the job when done (caller reads result)."""
    job = jobs_store.get_job(ws.database, job_id)
    if job["state"] in ("queued", "running"):
        pct = int(round(100 * (job.get("progress") or 0)))
        return Outcome(message=f"{what}: job {job_id} {job['state']} {pct}%")
    if job["state"] != "done":
        return Outcome(error=f"{what} job {job_id} {job['state']}: {job.get('error') or job.get('message') or ''}")
    return None


def edge_capture_inputs(ws, it: dict, params: dict) -> list[int]:
    """The project's edge-captures versions (frames its devices sent back) that ``prepare_mining`` adds to the
    mining set, unless its parameter ``edge_captures`` is off."""
    from hub.fleet.captures import capture_versions

    if not params.get("edge_captures", True):
        return []
    return [v["id"] for v in capture_versions(ws.database, it["project_id"]) if v["id"] != it["mining_version_id"]]


def _start_prepare(ws, setup, it, inputs, params) -> Started:
    from hub.mining import submit_prepare

    p = {k: v for k, v in params.items() if v not in (None, [], "") and k != "edge_captures"}
    version_ids = list(inputs["version_ids"]) + edge_capture_inputs(ws, it, params)
    job = submit_prepare(_ctx(ws), project_id=it["project_id"], version_ids=version_ids,
                         exclude_version_ids=inputs["exclude_version_ids"],
                         name=f"mining-round-{it['round']}", created_by=params.get("_user"),
                         **{k: v for k, v in p.items() if not k.startswith("_")})
    return Started(job_id=job["id"], phase="preparing")


def _start_mining(ws, setup, it, inputs, params) -> Started:
    from hub.mining import submit_mining

    topk = params.get("topk")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise BadInput(f"mining: topk must be a positive integer, got {topk!r}")
    config = params.get("config") or {}
    if not isinstance(config, dict):
        raise BadInput(f"mining: config must be an object of executor settings, got {config!r}")
    job = submit_mining(_ctx(ws), model_id=inputs["model_id"], stage=inputs["stage"],
                        version_ids=inputs["version_ids"], algorithm=params["algorithm"], topk=topk,
                        class_balanced=bool(params.get("class_balanced")),
                        pre_annotations=bool(params.get("pre_annotations", True)), config=config,
                        name=f"mined-round-{it['round']}", backend_key=backend_key(ws.settings),
                        created_by=params.get("_user"))
    return Started(job_id=job["id"], phase="mining")


def _poll_version_job(what: str):
    def poll(ws, setup, it, step) -> Outcome:
        early = _job_outcome(ws, step["job_id"], what)
        if early is not None:
            return early
        result = jobs_store.get_job(ws.database, step["job_id"])["result"]
        return Outcome(output={"version_id": result["version_id"], "job_id": step["job_id"]})

    return poll


# -- labeling ----------------------------------------------------------------------------------------------
def _start_label(ws, setup, it, inputs, params) -> Started:
    from hub.labeling.tasks import create_task

    task = create_task(ws, version_id=inputs["version_id"], name=f"round {it['round']} labeling",
                       assignees=params.get("assignees") or (), pre_annotations=True,
                       backend=params.get("backend") or "builtin", created_by=params.get("_user"))
    return Started(task_id=task["id"], phase="labeling")


def _poll_label(ws, setup, it, step) -> Outcome:
    from hub.labeling.tasks import get_task

    task = get_task(ws.database, step["task_id"])
    if task["state"] == "done":
        return Outcome(output={"version_id": task["result_version_id"], "task_id": task["id"]})
    if task["state"] == "cancelled":
        return Outcome(error=f"labeling task {task['id']} was cancelled")
    return Outcome(message=f"waiting for labeling task {task['id']} ({task['state']}): "
                           f"{task['images_done']}/{task['images_total']} images done")


# -- merge (quick, done at once) --------------------------------------------------------------------------
def _start_merge(ws, setup, it, inputs, params) -> Started:
    from hub.datasets.ops import merge_versions

    version = merge_versions(ws, inputs["host_id"], inputs["guest_ids"], strategy=params.get("strategy") or "host",
                             user_id=params.get("_user"))
    return Started(output={"version_id": version["id"], "images": version["images"]})


def _no_poll(ws, setup, it, step) -> Outcome:
    return Outcome(output=step["output"])


# -- training, then testing on the fixed test set ---------------------------------------------------------
def _start_training(ws, setup, it, inputs, params) -> Started:
    from hub.store import models as models_store
    from hub.training import submit_training

    if it["round"] == 0 and setup.get("initial_model_id"):
        return _start_testing(ws, setup, it, setup["initial_model_id"], setup.get("initial_stage"),
                              inputs["train_version_id"])
    image = None
    pretrained = None
    if params.get("pretrained", True) and it["model_id"]:
        pretrained = it["model_id"]
        image = models_store.get_model(ws.database, pretrained)["image"]
    kwargs = {"image": image} if image else {}
    job = submit_training(_ctx(ws), project_id=it["project_id"], train_version_id=inputs["train_version_id"],
                          val_version_id=inputs["val_version_id"], config=params.get("config") or {},
                          pretrained_model_id=pretrained, pretrained_stage=it["model_stage"] if pretrained else None,
                          backend_key=backend_key(ws.settings), name=f"iteration-round-{it['round']}",
                          created_by=params.get("_user"), **kwargs)
    return Started(job_id=job["id"], phase="training")


def _start_testing(ws, setup, it, model_id: int, stage: str | None, train_version_id: int) -> Started:
    from hub.training import submit_inference

    # the round's test mAP is computed from these detections: cut at the infer template's 0.25 the PR curve is
    # truncated (rare classes most), so the test pass keeps the low threshold the trainer's validation uses
    (job,) = submit_inference(_ctx(ws), model_id=model_id, version_ids=[setup["test_version_id"]], stage=stage,
                              config={"conf_threshold": TEST_CONF_THRESHOLD}, mode="infer",
                              backend_key=backend_key(ws.settings))
    return Started(job_id=job["id"], phase="testing",
                   output={"model_id": model_id, "stage": stage, "training_version_id": train_version_id})


def _poll_training(ws, setup, it, step) -> Outcome:
    from hub.diagnosis import evaluate

    early = _job_outcome(ws, step["job_id"], step["phase"] or "training")
    if early is not None:
        return early
    result = jobs_store.get_job(ws.database, step["job_id"])["result"]
    if step["phase"] == "training":
        train_version = jobs_store.get_job(ws.database, step["job_id"])["params"]["train_version_id"]
        nxt = _start_testing(ws, setup, it, result["model_id"], result.get("best_stage"), train_version)
        nxt.output = {**nxt.output, "training_job_id": step["job_id"], "val_metrics": result.get("metrics", {})}
        return Outcome(next=nxt, message="testing the new model")
    ev = evaluate(ws.database, result["version_id"], setup["test_version_id"])
    return Outcome(output={**step["output"], "test_pred_version_id": result["version_id"],
                           "test_map50": ev["mAP50"], "test_map50_95": ev["mAP50_95"]})


STEPS: dict[str, StepDef] = {
    "prepare_mining": StepDef(start=_start_prepare, poll=_poll_version_job("preparation")),
    "mining": StepDef(start=_start_mining, poll=_poll_version_job("mining")),
    "label": StepDef(start=_start_label, poll=_poll_label),
    "merge": StepDef(start=_start_merge, poll=_no_poll),
    "training": StepDef(start=_start_training, poll=_poll_training),
}
