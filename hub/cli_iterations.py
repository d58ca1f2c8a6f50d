"""``ymir-hub iteration start | show | step | skip | next | history``: the iteration workflow."""

from __future__ import annotations

import click

from detkit.errors import BadInput
from hub.cli import CliContext, emit, json_option, pass_cli
from hub.cli_jobs import _parse_sets, _wait


@click.group()
def iteration():
    """The iteration workflow: rounds of prepare-mining -> mining -> label -> merge -> training."""


def _round_text(data: dict) -> str:
    lines = [f"project {data['project']} (id {data['project_id']})"]
    g = data["goals"]
    if g["map"] is not None:
        lines.append(f"  goal mAP50 {g['map']:.3f}: best so far {g['current_map']:.3f}"
                     f"{'  (reached)' if g['map_reached'] else ''}")
    if g["train_images"] is not None:
        lines.append(f"  goal training images {g['train_images']}: now {g['current_train_images']}"
                     f"{'  (reached)' if g['train_images_reached'] else ''}")
    for r in data["rounds"]:
        res = r["result"]
        tail = f"  test mAP50 {res['test_map50']:.3f}" if res.get("test_map50") is not None else ""
        lines.append(f"  round {r['round']} [{r['state']}] model {r['model_id'] or '-'} "
                     f"training set {r['training_version_id']}{tail}")
        if r["state"] == "active":
            for s in r["steps"]:
                mark = "->" if s["step"] == r["current_step"] else "  "
                extra = f"  {s['message']}" if s["message"] else ""
                lines.append(f"    {mark} {s['step']:<15} {s['state']:<8} {s['output'] or ''}{extra}")
    return "\n".join(lines)


@iteration.command("start")
@click.option("--project", required=True, help="Project name or id.")
@click.option("--train", "training", type=int, required=True, help="Training set (version id).")
@click.option("--mining", type=int, required=True, help="Mining set (version id).")
@click.option("--val", "validation", type=int, required=True, help="Validation set (version id, fixed).")
@click.option("--test", type=int, required=True, help="Test set (version id): each round's mAP is measured on it.")
@click.option("--initial-model", type=int, default=None, help="Initial model (default: train one in round 0).")
@click.option("--initial-stage", default=None, help="Stage of the initial model (default: its best).")
@click.option("--goal-map", type=float, default=None, help="Target test mAP50 (0-1).")
@click.option("--goal-train-images", type=int, default=None, help="Target training-set size (images).")
@json_option
@pass_cli
def start(cli: CliContext, project, training, mining, validation, test, initial_model, initial_stage, goal_map,
          goal_train_images, as_json):
    """Set up the project's iteration and open round 0 (the initial model)."""
    from hub import iterations

    data = iterations.start(cli.workspace, project, training_version_id=training, mining_version_id=mining,
                            validation_version_id=validation, test_version_id=test,
                            initial_model_id=initial_model, initial_stage=initial_stage, goal_map=goal_map,
                            goal_train_images=goal_train_images)
    emit(data, as_json, _round_text)


@iteration.command("show")
@click.option("--project", required=True, help="Project name or id.")
@json_option
@pass_cli
def show(cli: CliContext, project, as_json):
    """The iteration's setup, goals and rounds with their steps."""
    from hub import iterations

    emit(iterations.show(cli.workspace, project), as_json, _round_text)


def _step_row(data: dict, step: str) -> dict | None:
    active = next((r for r in data["rounds"] if r["state"] == "active"), None)
    if active is None:
        return None
    return next((s for s in active["steps"] if s["step"] == step), None)


@iteration.command("step")
@click.argument("step")
@click.option("--project", required=True, help="Project name or id.")
@click.option("--param", "params", multiple=True, help="A step parameter key=value (YAML value); sticky.")
@click.option("--config", "config_sets", multiple=True, help="training: an executor config key=value.")
@click.option("--wait", is_flag=True, help="Run the step's jobs here until the step is done (not labeling).")
@json_option
@pass_cli
def step(cli: CliContext, step, project, params, config_sets, wait, as_json):
    """Run STEP of the active round with its inputs pre-filled from the earlier steps."""
    from hub import iterations

    values = _parse_sets(params)
    if config_sets:
        if step != "training":
            raise BadInput("--config applies to the training step only")
        values["config"] = {**(values.get("config") or {}), **_parse_sets(config_sets)}
    data = iterations.run_step(cli.workspace, project, step, values)
    while wait:
        row = _step_row(data, step)
        if row is None or row["state"] != "running" or not row["job_id"]:
            break
        _wait(cli, [row["job_id"]], as_json)
        data = iterations.show(cli.workspace, project)
    row = _step_row(data, step)
    if wait and row is not None and row["state"] == "failed":
        raise BadInput(f"step {step!r} failed: {row['error']}")
    emit(data, as_json, _round_text)


@iteration.command("skip")
@click.argument("step")
@click.option("--project", required=True, help="Project name or id.")
@json_option
@pass_cli
def skip(cli: CliContext, step, project, as_json):
    """Skip STEP of the active round."""
    from hub import iterations

    emit(iterations.skip_step(cli.workspace, project, step), as_json, _round_text)


@iteration.command("next")
@click.option("--project", required=True, help="Project name or id.")
@click.option("--mining", type=int, default=None, help="Replace the mining set from this round on.")
@json_option
@pass_cli
def next_round(cli: CliContext, project, mining, as_json):
    """Start the next iteration from the last round's training set and model."""
    from hub import iterations

    emit(iterations.next_round(cli.workspace, project, mining_version_id=mining), as_json, _round_text)


def _history_text(data: dict) -> str:
    lines = [f"{'round':>5} {'state':<7} {'train':>6} {'mined':>6} {'labeled':>7} {'model':>6} {'test mAP50':>10}"]
    for r in data["rounds"]:
        m = f"{r['test_map50']:.3f}" if r["test_map50"] is not None else "-"
        lines.append(f"{r['round']:>5} {r['state']:<7} {r['training_version_id'] or '-':>6} "
                     f"{r['mined_version_id'] or '-':>6} {r['labeled_version_id'] or '-':>7} "
                     f"{r['model_id'] or '-':>6} {m:>10}")
    return "\n".join(lines)


@iteration.command("history")
@click.option("--project", required=True, help="Project name or id.")
@json_option
@pass_cli
def history(cli: CliContext, project, as_json):
    """Each round's datasets, model and test mAP."""
    from hub import iterations

    emit(iterations.history(cli.workspace, project), as_json, _history_text)


COMMANDS = [iteration]
