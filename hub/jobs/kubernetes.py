"""KubernetesBackend: one Kubernetes Job per task, through the official ``kubernetes`` client.

The hub's workspace lives on a shared volume (a PersistentVolumeClaim mounted by the hub and by every job
pod). A job's ``/in`` and ``/out`` are that claim mounted at exactly those paths with ``subPath`` = the run's
folders relative to the workspace (``/in`` read-only), so the executor sees the YMIR layout and the hub reads
``/out`` as soon as the pod writes it. A GPU count becomes a ``nvidia.com/gpu`` limit (``gpu_resource``),
``shm_size`` a memory-backed ``/dev/shm``. The Job is named after the hub's job id and labelled with it, so a
restarted hub finds it again; ``backoffLimit: 0`` and ``restartPolicy: Never`` leave retrying to the hub.

Config (``YMIR_K8S_*`` settings, see docs/cli.md): ``namespace`` (default ``default``), ``pvc`` (required: the
claim holding the workspace), ``workspace`` (the workspace path as the hub sees it; run folders must be under
it), ``kubeconfig`` (a file; empty: the in-cluster service account, else ``~/.kube/config``), ``context``,
``host`` (API server URL overriding the kubeconfig's), ``token``, ``verify_ssl``, ``service_account``,
``image_pull_policy`` (``IfNotPresent``), ``gpu_resource``, ``cpu`` / ``memory`` (requests), ``node_selector``
(``{label: value}``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from detkit.errors import BadInput, Unavailable
from hub.jobs.base import RunRequest, RunStatus

#: a pod waiting for one of these will not start by itself: the run is failed and its Job removed
FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError"}
MANAGED_BY = {"app.kubernetes.io/managed-by": "ymir-edge"}


def _shm_limit(size: str) -> str:
    """Docker's ``1g`` / ``512m`` as a Kubernetes quantity (``1Gi`` / ``512Mi``)."""
    size = (size or "1g").strip()
    units = {"k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}
    if size and size[-1].lower() in units and size[:-1].isdigit():
        return size[:-1] + units[size[-1].lower()]
    return size


class KubernetesBackend:
    key = "kubernetes"

    def __init__(self, config: dict):
        from kubernetes import client  # heavy client: imported only when this backend is chosen

        self._client = client
        self.namespace = config.get("namespace") or "default"
        self.pvc = config.get("pvc") or ""
        if not self.pvc:
            raise BadInput("kubernetes job backend: set YMIR_K8S_PVC, the claim that holds the hub's workspace")
        self.workspace = Path(config.get("workspace") or ".").resolve()
        self.service_account = config.get("service_account") or None
        self.pull_policy = config.get("image_pull_policy") or "IfNotPresent"
        self.gpu_resource = config.get("gpu_resource") or "nvidia.com/gpu"
        self.requests = {k: str(config[k]) for k in ("cpu", "memory") if config.get(k)}
        self.node_selector = dict(config.get("node_selector") or {}) or None
        api_client = self._api_client(config)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        try:
            self.core.get_api_resources(_request_timeout=10)
        except Exception as exc:  # noqa: BLE001 - any failure to reach the API server says the same
            raise Unavailable(f"kubernetes API unreachable at {api_client.configuration.host}: {_reason(exc)}") from exc

    def _api_client(self, config: dict):
        from kubernetes import config as kube_config

        conf = self._client.Configuration()
        try:
            if config.get("kubeconfig"):
                kube_config.load_kube_config(config_file=config["kubeconfig"], context=config.get("context") or None,
                                             client_configuration=conf)
            elif not config.get("host"):
                try:
                    kube_config.load_incluster_config(client_configuration=conf)
                except kube_config.ConfigException:
                    kube_config.load_kube_config(context=config.get("context") or None, client_configuration=conf)
        except (kube_config.ConfigException, OSError) as exc:
            raise Unavailable(f"kubernetes job backend: no usable kubeconfig ({exc}); set YMIR_K8S_KUBECONFIG "
                              "or YMIR_K8S_HOST") from exc
        if config.get("host"):
            conf.host = config["host"].rstrip("/")
        if config.get("token"):
            conf.api_key = {"authorization": f"Bearer {config['token']}"}
        if "verify_ssl" in config and config["verify_ssl"] is not None:
            conf.verify_ssl = bool(config["verify_ssl"])
        return self._client.ApiClient(conf)

    # -- the protocol -------------------------------------------------------------------------------------
    def roots(self, req: RunRequest) -> tuple[str, str]:
        return "/in", "/out"

    def _sub_path(self, folder: Path, what: str) -> str:
        try:
            return Path(folder).resolve().relative_to(self.workspace).as_posix()
        except ValueError:
            raise BadInput(f"the job's {what} folder {folder} is not under the workspace {self.workspace} "
                           "(the folder the claim holds)") from None

    def job_manifest(self, req: RunRequest) -> dict:
        """The Job object ``submit`` creates (plain dict, as the API takes it)."""
        if not req.image.docker_ref:
            raise BadInput(f"image {req.image.name!r} has no image reference to run on Kubernetes")
        name = job_name(req.job_id)
        limits = {self.gpu_resource: str(req.gpu_count)} if req.gpu_count else {}
        container = {
            "name": "executor", "image": req.image.docker_ref, "imagePullPolicy": self.pull_policy,
            "env": [{"name": k, "value": str(v)} for k, v in sorted(req.env.items())],
            "volumeMounts": [
                {"name": "workspace", "mountPath": "/in", "subPath": self._sub_path(req.in_dir, "in"), "readOnly": True},
                {"name": "workspace", "mountPath": "/out", "subPath": self._sub_path(req.out_dir, "out")},
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
            "resources": {k: v for k, v in (("limits", limits), ("requests", self.requests)) if v},
        }
        pod_spec = {
            "restartPolicy": "Never", "containers": [container],
            "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": self.pvc}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": _shm_limit(req.shm_size)}}],
        }
        if self.service_account:
            pod_spec["serviceAccountName"] = self.service_account
        if self.node_selector:
            pod_spec["nodeSelector"] = self.node_selector
        labels = {**MANAGED_BY, "ymir.job": req.job_id}
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
                "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}

    def submit(self, req: RunRequest) -> str:
        body = self.job_manifest(req)
        name = body["metadata"]["name"]
        with contextlib.suppress(self._client.ApiException):  # a leftover of an earlier attempt
            self._delete(name)
        try:
            self.batch.create_namespaced_job(self.namespace, body)
        except self._client.ApiException as exc:
            if exc.status in (400, 403, 409, 422):
                raise BadInput(f"kubernetes refused job {name}: {_reason(exc)}") from None
            raise Unavailable(f"kubernetes API: creating job {name}: {_reason(exc)}") from exc
        return f"k8s:{self.namespace}/{name}"

    def _parse(self, handle: str) -> tuple[str, str]:
        ns, _, name = handle.split(":", 1)[1].partition("/")
        return ns, name

    def _pod(self, ns: str, name: str):
        pods = self.core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items
        return max(pods, key=lambda p: p.metadata.creation_timestamp or 0) if pods else None

    def poll(self, handle: str) -> RunStatus:
        ns, name = self._parse(handle)
        try:
            job = self.batch.read_namespaced_job_status(name, ns)
        except self._client.ApiException as exc:
            if exc.status == 404:
                return RunStatus(False, None, "the Kubernetes job is gone")
            raise Unavailable(f"kubernetes API: reading job {name}: {_reason(exc)}") from exc
        status = job.status
        pod = self._pod(ns, name)
        state = _container_state(pod)
        if state is not None and state.waiting is not None and state.waiting.reason in FATAL_WAITING:
            detail = f"{state.waiting.reason}: {state.waiting.message or ''}".strip()
            self.cancel(handle)
            return RunStatus(False, None, detail)
        if not (status.succeeded or status.failed):
            return RunStatus(True, detail="pending" if not status.active else "")
        code, detail = (0 if status.succeeded else None), ""
        if state is not None and state.terminated is not None:
            code = state.terminated.exit_code
            reason = state.terminated.reason or ""
            detail = "out of memory" if reason == "OOMKilled" else (state.terminated.message or "")
        elif status.failed:
            conds = [c for c in (status.conditions or []) if c.type == "Failed"]
            detail = (conds[0].message or conds[0].reason or "") if conds else "the job failed"
        return RunStatus(False, code, detail)

    def cancel(self, handle: str) -> None:
        ns, name = self._parse(handle)
        with contextlib.suppress(self._client.ApiException):
            self._delete(name, ns)

    def _delete(self, name: str, ns: str | None = None) -> None:
        self.batch.delete_namespaced_job(name, ns or self.namespace, propagation_policy="Background",
                                         grace_period_seconds=5)

    def logs(self, handle: str, log_path: Path) -> str:
        ns, name = self._parse(handle)
        try:
            pod = self._pod(ns, name)
            if pod is not None:
                return self.core.read_namespaced_pod_log(pod.metadata.name, ns, container="executor")
        except self._client.ApiException:
            pass
        try:
            return log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self, handle: str, log_path: Path) -> None:
        text = self.logs(handle, log_path)
        if text:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(text)
        self.cancel(handle)


def job_name(job_id: str) -> str:
    """A DNS-1123 name for the hub's job id."""
    safe = "".join(c if c.isalnum() or c == "-" else "-" for c in job_id.lower()).strip("-")
    return f"ymir-job-{safe}"[:63].rstrip("-")


def _container_state(pod):
    if pod is None or pod.status is None or not pod.status.container_statuses:
        return None
    return pod.status.container_statuses[0].state


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if status:
        import json

        try:
            message = json.loads(body or "{}").get("message") or ""
        except (TypeError, ValueError):
            message = str(body or "")[:200]
        return f"HTTP {status} {getattr(exc, 'reason', '')}: {message}".strip(": ")
    return str(exc)[:300]


def make(config: dict) -> KubernetesBackend:
    return KubernetesBackend(config)
