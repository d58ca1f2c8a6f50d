"""A stand-in Kubernetes API server for the KubernetesBackend tests: the real ``kubernetes`` client talks HTTP
to it, and it answers with API objects shaped as the API server returns them (batch/v1 Job, v1 Pod, v1 Status,
per the Kubernetes API reference). It keeps the Jobs it is sent, so a test reads back what the backend created,
and a test sets each Job's phase (active, succeeded, failed) and its pod's container state."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> tuple[Response, int]:
    return jsonify({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                    "reason": reason, "code": code}), code


def container_state(kind: str, **fields) -> dict:
    """A containerStatuses[0].state: running / waiting(reason, message) / terminated(exitCode, reason, message)."""
    if kind == "running":
        return {"running": {"startedAt": _now()}}
    if kind == "waiting":
        return {"waiting": {"reason": fields.get("reason", "ContainerCreating"), "message": fields.get("message", "")}}
    return {"terminated": {"exitCode": fields.get("exit_code", 0), "reason": fields.get("reason", "Completed"),
                           "message": fields.get("message"), "startedAt": _now(), "finishedAt": _now(),
                           "containerID": "containerd://0f3c"}}


class FakeCluster:
    """The API server's state and its HTTP face on a free loopback port."""

    def __init__(self, token: str = "test-token"):
        self.token = token
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pod_states: dict[str, dict] = {}  # job name -> container state
        self.logs: dict[str, str] = {}
        self.deletes: list[dict] = []
        self.created: list[dict] = []
        self.app = self._make_app()
        self._srv = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._srv.server_port}"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    def start(self) -> FakeCluster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._srv.shutdown()

    # a test moves a job along
    def set_phase(self, name: str, phase: str, ns: str = "default", **state) -> None:
        job = self.jobs[(ns, name)]
        st = {"startTime": _now()}
        if phase == "active":
            st["active"] = 1
            self.pod_states[name] = container_state("running")
        elif phase == "pending":
            st["active"] = 1
            self.pod_states[name] = container_state("waiting", **state)
        elif phase == "succeeded":
            st.update(succeeded=1, completionTime=_now(),
                      conditions=[{"type": "Complete", "status": "True", "lastProbeTime": _now(),
                                   "lastTransitionTime": _now()}])
            self.pod_states[name] = container_state("terminated", exit_code=0)
        elif phase == "failed":
            st.update(failed=1, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                             "message": "Job has reached the specified backoff limit",
                                             "lastProbeTime": _now(), "lastTransitionTime": _now()}])
            self.pod_states[name] = container_state("terminated", exit_code=state.get("exit_code", 1),
                                                    reason=state.get("reason", "Error"), message=state.get("message"))
        job["status"] = st

    def _pod(self, ns: str, name: str) -> dict:
        job = self.jobs[(ns, name)]
        spec = job["spec"]["template"]["spec"]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{name}-x7k2p", "namespace": ns, "creationTimestamp": _now(),
                             "labels": {"job-name": name, "controller-uid": job["metadata"]["uid"]}},
                "spec": spec,
                "status": {"phase": "Running", "containerStatuses": [
                    {"name": "executor", "image": spec["containers"][0]["image"], "imageID": "", "ready": True,
                     "restartCount": 0, "state": self.pod_states.get(name, container_state("waiting"))}]}}

    def _make_app(self) -> Flask:
        app = Flask("fake-kubernetes")

        @app.before_request
        def auth():
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return status(401, "Unauthorized", "Unauthorized")
            return None

        @app.get("/api/v1/")
        def resources():
            return jsonify({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]}]})

        @app.post("/apis/batch/v1/namespaces/<ns>/jobs")
        def create_job(ns):
            body = request.get_json(force=True)
            name = body["metadata"]["name"]
            if (ns, name) in self.jobs:
                return status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            if not body["spec"]["template"]["spec"]["containers"][0].get("image"):
                return status(422, "Invalid", f'Job.batch "{name}" is invalid: spec.template.spec.containers[0].image: '
                                              "Required value")
            job = copy.deepcopy(body)
            job["metadata"].update(uid=f"uid-{len(self.jobs)}", creationTimestamp=_now(), resourceVersion="1")
            job["status"] = {}
            self.jobs[(ns, name)] = job
            self.created.append(body)
            return jsonify(job), 201

        @app.get("/apis/batch/v1/namespaces/<ns>/jobs/<name>/status")
        def read_job(ns, name):
            if (ns, name) not in self.jobs:
                return status(404, "NotFound", f'jobs.batch "{name}" not found')
            return jsonify(self.jobs[(ns, name)])

        @app.delete("/apis/batch/v1/namespaces/<ns>/jobs/<name>")
        def delete_job(ns, name):
            if (ns, name) not in self.jobs:
                return status(404, "NotFound", f'jobs.batch "{name}" not found')
            self.deletes.append({"name": name, "namespace": ns, "body": request.get_json(force=True, silent=True) or {},
                                 "args": dict(request.args)})
            del self.jobs[(ns, name)]
            self.pod_states.pop(name, None)
            return jsonify({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})

        @app.get("/api/v1/namespaces/<ns>/pods")
        def list_pods(ns):
            selector = request.args.get("labelSelector", "")
            name = selector.removeprefix("job-name=")
            items = [self._pod(ns, name)] if (ns, name) in self.jobs and name in self.pod_states else []
            return jsonify({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                            "items": items})

        @app.get("/api/v1/namespaces/<ns>/pods/<pod>/log")
        def pod_log(ns, pod):
            name = pod.rsplit("-", 1)[0]
            if (ns, name) not in self.jobs:
                return status(404, "NotFound", f'pods "{pod}" not found')
            return Response(self.logs.get(name, ""), mimetype="text/plain")

        return app
