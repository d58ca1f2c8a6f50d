"""KubernetesBackend through the real ``kubernetes`` client against a stand-in API server (tests/hub/jobs/k8s_api.py)
answering with API objects as the API server shapes them: the Job it creates (/in and /out on the shared claim,
GPU limits, no retries), polling through pending / running / succeeded / failed / OOM / image-pull failure, logs,
cancel, a hub restart finding the Job again, and a clear error when the API cannot be reached."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("kubernetes")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from k8s_api import FakeCluster  # noqa: E402

from detkit.errors import BadInput, Unavailable  # noqa: E402
from hub.jobs.base import ExecutorImage, RunRequest, make_backend  # noqa: E402


@pytest.fixture
def cluster():
    c = FakeCluster().start()
    yield c
    c.stop()


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "jobs" / "j1" / "in").mkdir(parents=True)
    (tmp_path / "jobs" / "j1" / "out").mkdir(parents=True)
    return tmp_path


def _backend(cluster, ws, **extra):
    return make_backend("kubernetes", {"host": cluster.url, "token": cluster.token, "namespace": "ymir",
                                       "pvc": "ymir-workspace", "workspace": str(ws), **extra})


def _req(ws, job_id="a1b2c3", gpus=0, ref="registry.local/ymir-edge/executor:1"):
    return RunRequest(job_id=job_id, image=ExecutorImage("builtin", docker_ref=ref), in_dir=ws / "jobs" / "j1" / "in",
                      out_dir=ws / "jobs" / "j1" / "out", log_path=ws / "jobs" / "j1" / "log.txt", gpu_count=gpus,
                      shm_size="2g", env={"YMIR_TASK": "training"})


def test_the_job_it_creates_mounts_in_and_out_from_the_claim_and_asks_for_gpus(cluster, ws):
    backend = _backend(cluster, ws, cpu="2", memory="4Gi", service_account="ymir-jobs",
                       node_selector={"accelerator": "nvidia-h100"})
    handle = backend.submit(_req(ws, gpus=2))
    assert handle == "k8s:ymir/ymir-job-a1b2c3"
    (job,) = cluster.created
    assert job["metadata"]["labels"]["ymir.job"] == "a1b2c3" and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "ymir-jobs"
    assert pod["nodeSelector"] == {"accelerator": "nvidia-h100"}
    assert pod["volumes"][0] == {"name": "workspace", "persistentVolumeClaim": {"claimName": "ymir-workspace"}}
    assert pod["volumes"][1]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    (c,) = pod["containers"]
    assert c["image"] == "registry.local/ymir-edge/executor:1" and c["env"] == [{"name": "YMIR_TASK",
                                                                                  "value": "training"}]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/in"] == {"name": "workspace", "mountPath": "/in", "subPath": "jobs/j1/in", "readOnly": True}
    assert mounts["/out"]["subPath"] == "jobs/j1/out" and not mounts["/out"].get("readOnly")
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "2"}, "requests": {"cpu": "2", "memory": "4Gi"}}
    assert backend.roots(_req(ws)) == ("/in", "/out")


def test_poll_follows_the_job_to_its_exit_code_and_keeps_the_logs(cluster, ws):
    backend = _backend(cluster, ws)
    handle = backend.submit(_req(ws))
    name = "ymir-job-a1b2c3"
    assert backend.poll(handle).running  # created, no pod yet
    cluster.set_phase(name, "pending", ns="ymir", reason="ContainerCreating")
    assert backend.poll(handle).running
    cluster.set_phase(name, "active", ns="ymir")
    cluster.logs[name] = "epoch 1/3 loss 2.1\n"
    assert backend.poll(handle).running and "epoch 1/3" in backend.logs(handle, ws / "log.txt")
    cluster.set_phase(name, "succeeded", ns="ymir")
    st = backend.poll(handle)
    assert (st.running, st.exit_code) == (False, 0)
    log = ws / "jobs" / "j1" / "log.txt"
    backend.cleanup(handle, log)
    assert log.read_text() == "epoch 1/3 loss 2.1\n"
    assert cluster.deletes[-1]["name"] == name and "Background" in (cluster.deletes[-1]["body"].get("propagationPolicy"),
                                                                      cluster.deletes[-1]["args"].get("propagationPolicy"))
    assert backend.poll(handle).detail == "the Kubernetes job is gone"
    assert backend.logs(handle, log) == "epoch 1/3 loss 2.1\n"  # from the saved file once the job is gone


def test_failures_carry_their_reason(cluster, ws):
    backend = _backend(cluster, ws)
    h1 = backend.submit(_req(ws, job_id="f1"))
    cluster.set_phase("ymir-job-f1", "failed", ns="ymir", exit_code=137, reason="OOMKilled")
    st = backend.poll(h1)
    assert (st.running, st.exit_code, st.detail) == (False, 137, "out of memory")
    h2 = backend.submit(_req(ws, job_id="f2"))
    cluster.set_phase("ymir-job-f2", "failed", ns="ymir", exit_code=2, reason="Error", message="bad config")
    assert backend.poll(h2).exit_code == 2 and backend.poll(h2).detail == "bad config"
    # an image that cannot be pulled never starts: the run fails with the reason and the Job is removed
    h3 = backend.submit(_req(ws, job_id="f3", ref="nowhere/missing:0"))
    cluster.set_phase("ymir-job-f3", "pending", ns="ymir", reason="ImagePullBackOff",
                      message='Back-off pulling image "nowhere/missing:0"')
    st = backend.poll(h3)
    assert not st.running and st.exit_code is None and st.detail.startswith("ImagePullBackOff: Back-off pulling")
    assert ("ymir", "ymir-job-f3") not in cluster.jobs


def test_cancel_deletes_the_job_and_a_restarted_hub_finds_a_running_one(cluster, ws):
    handle = _backend(cluster, ws).submit(_req(ws, job_id="r1"))
    cluster.set_phase("ymir-job-r1", "active", ns="ymir")
    again = _backend(cluster, ws)  # a new hub process: the handle is all it has
    assert again.poll(handle).running
    again.cancel(handle)
    again.cancel(handle)  # twice is fine
    assert ("ymir", "ymir-job-r1") not in cluster.jobs and not again.poll(handle).running
    # a leftover Job of an earlier attempt with the same id is replaced, not a conflict
    _backend(cluster, ws).submit(_req(ws, job_id="r2"))
    _backend(cluster, ws).submit(_req(ws, job_id="r2"))
    assert len([j for j in cluster.created if j["metadata"]["name"] == "ymir-job-r2"]) == 2


def test_bad_requests_and_an_unreachable_api_are_clear_errors(cluster, ws, tmp_path):
    backend = _backend(cluster, ws)
    with pytest.raises(BadInput, match="has no image reference"):
        backend.submit(_req(ws, ref=""))
    outside = _req(ws)
    outside.in_dir = tmp_path.parent / "elsewhere"
    with pytest.raises(BadInput, match="is not under the workspace"):
        backend.submit(outside)
    with pytest.raises(BadInput, match="YMIR_K8S_PVC"):
        make_backend("kubernetes", {"host": cluster.url, "token": cluster.token})
    with pytest.raises(Unavailable, match="HTTP 401"):
        _backend(cluster, ws, token="wrong")
    with pytest.raises(Unavailable, match="kubernetes API unreachable at http://127.0.0.1:9"):
        make_backend("kubernetes", {"host": "http://127.0.0.1:9", "pvc": "c", "workspace": str(ws)})
    with pytest.raises(Unavailable, match="no usable kubeconfig"):
        make_backend("kubernetes", {"kubeconfig": str(tmp_path / "missing.yaml"), "pvc": "c"})


def test_settings_choose_it_and_pass_the_claim_and_the_workspace(tmp_path):
    from hub.config import load_settings
    from hub.jobs.setup import backend_config

    with pytest.raises(BadInput, match="needs YMIR_K8S_PVC"):
        load_settings(tmp_path / "ws", env={"YMIR_JOB_BACKEND": "kubernetes"})
    s = load_settings(tmp_path / "ws", env={"YMIR_JOB_BACKEND": "kubernetes", "YMIR_K8S_PVC": "ymir-ws",
                                            "YMIR_K8S_NAMESPACE": "ml", "YMIR_K8S_HOST": "https://k8s:6443"})
    assert backend_config(s) == {"pvc": "ymir-ws", "namespace": "ml", "host": "https://k8s:6443",
                                 "workspace": str(s.home)}
