"""The executor contract under both backends, with a toy executor that knows only the contract."""

from __future__ import annotations

import socket
import time

import pytest

from hub.jobs.base import make_backend
from hub.jobs.runner import Runner
from hub.store import jobs as store


@pytest.fixture(params=["local", "docker"])
def runner(request, ctx):
    if request.param == "docker":
        host = request.getfixturevalue("docker_host")
        r = Runner(ctx, make_backend("docker", {"docker_host": host}), poll_interval=0.1)
    else:
        r = Runner(ctx, make_backend("local"), poll_interval=0.1)
    yield r
    r.stop()


def _run(runner, ctx, timeout=60, **params):
    job = store.create_job(ctx.database, kind="toy", category="executor", params=params,
                           timeout_s=params.pop("timeout_s", None))
    return runner.wait(job["id"], timeout=timeout)


def test_training_run_reads_stages_and_best(runner, ctx):
    job = _run(runner, ctx, mode="train")
    assert job["state"] == "done", job
    assert job["result"]["best_stage"] == "best"
    assert job["result"]["stages"]["best"]["mAP"] == pytest.approx(0.6)
    env = (ctx.workspace / "jobs" / job["id"] / "in" / "env.yaml").read_text()
    root = "/in" if runner.backend.key == "docker" else str(ctx.workspace)
    assert f"training_index_file: {root}" in env
    assert store.monitor_history(ctx.database, job["id"]), "progress points recorded"


def test_legacy_training_result(runner, ctx):
    job = _run(runner, ctx, mode="train", behavior="legacy")
    assert job["state"] == "done", job
    assert job["result"]["stages"]["default"]["mAP"] == pytest.approx(0.42)


def test_mining_and_infer_results(runner, ctx):
    mined = _run(runner, ctx, mode="mine")
    assert mined["state"] == "done", mined
    scores = [s for _, s in mined["result"]["scores"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    inferred = _run(runner, ctx, mode="infer")
    assert inferred["state"] == "done", inferred
    assert sorted(inferred["result"]["predictions"].values()) == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "behavior, expect",
    [
        ("exit1", "exited with code 1"),
        ("bad_monitor", "monitor.txt: malformed line"),
        ("no_result", "no models/result.yaml"),
        ("missing_files", "missing file 'gone.onnx'"),
        ("error_state", "reported an error in monitor.txt"),
    ],
)
def test_broken_executors_fail_with_the_reason(runner, ctx, behavior, expect):
    job = _run(runner, ctx, mode="train", behavior=behavior)
    assert job["state"] == "failed", job
    assert expect in job["error"], job["error"]


def test_timeout_and_cancel(runner, ctx):
    job = _run(runner, ctx, mode="train", behavior="sleep", timeout_s=1.5)
    assert job["state"] == "failed" and job["error_code"] == "job_timeout", job
    queued = store.create_job(ctx.database, kind="toy", category="executor", params={"behavior": "sleep"})
    runner.tick()
    assert store.get_job(ctx.database, queued["id"])["state"] == "running"
    store.request_cancel(ctx.database, queued["id"])
    t0 = time.time()
    final = runner.wait(queued["id"], timeout=30)
    assert final["state"] == "cancelled" and time.time() - t0 < 20


def test_ymir_exc_sdk_executor_runs_locally(ctx):
    pytest.importorskip("ymir_exc")
    r = Runner(ctx, make_backend("local"), poll_interval=0.1)
    for mode in ("train", "mine", "infer"):
        job = _run(r, ctx, mode=mode, sdk=True)
        assert job["state"] == "done", job
    r.stop()


def test_restart_reattaches_or_finishes(ctx):
    """A new runner (a restarted hub) finds a running job by its handle and finishes it."""
    first = Runner(ctx, make_backend("local"), poll_interval=0.1)
    job = store.create_job(ctx.database, kind="toy", category="executor", params={"mode": "train"})
    first.tick()
    row = store.get_job(ctx.database, job["id"])
    assert row["state"] == "running" and row["handle"].startswith("pid:")
    # The hub process "died": the row names an owner on this host whose pid no longer exists.
    store.set_owner(ctx.database, job["id"], f"{socket.gethostname()}:999999:1")
    second = Runner(ctx, make_backend("local"), poll_interval=0.1)
    final = second.wait(job["id"], timeout=60)
    assert final["state"] == "done", final


def test_local_backend_refuses_gpus_and_docker_only_images(ctx):
    from detkit.errors import BadInput
    from hub.jobs.base import ExecutorImage, RunRequest

    backend = make_backend("local")
    req = RunRequest("x", ExecutorImage("docker-only", docker_ref="a:b"), ctx.workspace, ctx.workspace,
                     ctx.workspace / "log")
    with pytest.raises(BadInput, match="only run under the docker backend"):
        backend.submit(req)
    req.image.local_command = ["/bin/true"]
    req.gpu_count = 1
    with pytest.raises(BadInput, match="cannot assign GPUs"):
        backend.submit(req)


def test_internal_jobs_report_progress_and_can_be_cancelled(ctx):
    import threading

    from hub.jobs.kinds import InternalKind, register

    release = threading.Event()

    def slow(ctx_, job, progress):
        for i in range(1000):
            progress(i / 1000, f"step {i}")
            if release.wait(0.01):
                return {"stopped_at": i}
        return {"steps": 1000}

    register("slow-internal", InternalKind(run=slow))
    r = Runner(ctx, make_backend("local"), poll_interval=0.05)
    job = store.create_job(ctx.database, kind="slow-internal", category="internal", params={})
    r.start()
    deadline = time.time() + 10
    while store.get_job(ctx.database, job["id"])["progress"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert 0 < store.get_job(ctx.database, job["id"])["progress"] < 1
    store.request_cancel(ctx.database, job["id"])
    final = r.wait(job["id"], timeout=10)
    r.stop()
    assert final["state"] == "cancelled"
