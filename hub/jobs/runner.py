"""The job runner: turns queued job rows into runs and runs into results.

One runner lives in the hub process (a thread, the default) or in ``ymir-hub worker``; several
may share a workspace: a job is claimed with one atomic UPDATE. After a restart no job stays
silently "running": executor runs are re-attached by their handle (pid / container id) — or, if
they ended meanwhile, finished from what they left in ``/out`` — and internal jobs whose owner is
gone are failed with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from detkit.errors import YmirError
from hub.jobs import contract
from hub.jobs.base import JobBackend, RunRequest, make_backend
from hub.jobs.contract import ContractError, Roots
from hub.jobs.kinds import KINDS, Cancelled, ExecutorKind, InternalKind, JobContext
from hub.jobs.local import proc_start_time
from hub.store import jobs as store

log = logging.getLogger(__name__)
LOG_TAIL = 4000


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{proc_start_time(os.getpid()) or ''}"


def _owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    try:
        host, pid, start = owner.split(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine's worker: not ours to judge
    now = proc_start_time(int(pid))
    return now is not None and (not start or now == start)


class Runner:
    """Runs jobs of one workspace with one backend; ``tick()`` is one scheduling step."""

    def __init__(
        self, ctx: JobContext, backend: JobBackend | None = None, *, backend_key: str = "local",
        backend_config: dict | None = None, concurrency: int = 1, internal_concurrency: int = 2,
        poll_interval: float = 0.5, default_timeout_s: float = 6 * 3600, only_jobs: set[str] | None = None,
    ):
        self.ctx = ctx
        self.database = ctx.database
        self._backend = backend
        self._backend_key = backend.key if backend else backend_key
        self._backend_config = backend_config or {}
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.default_timeout_s = default_timeout_s
        self.only_jobs = only_jobs  # a CLI waiting on its own job runs just that one
        self.owner = _owner_id()
        self._pool = ThreadPoolExecutor(max_workers=internal_concurrency, thread_name_prefix="ymir-job")
        self._internal: dict[str, Future] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._recovered = False

    @property
    def backend(self) -> JobBackend:
        if self._backend is None:
            self._backend = make_backend(self._backend_key, self._backend_config)
        return self._backend

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ymir-job-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive anything one job does
                log.exception("job runner tick failed")
            self._stop.wait(self.poll_interval)

    def wait(self, job_id: str, timeout: float | None = None, on_progress=None) -> dict:
        """Drive this runner until ``job_id`` is final (used by ``--wait`` CLIs and tests)."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            if not (self._thread and self._thread.is_alive()):
                self.tick()
            job = store.get_job(self.database, job_id)
            if on_progress:
                on_progress(job)
            if job["state"] in store.FINAL:
                return job
            if deadline is not None and time.time() > deadline:
                return job
            time.sleep(self.poll_interval)

    # -- one step --------------------------------------------------------------------------------
    def tick(self) -> None:
        with self._lock:
            if not self._recovered:
                self.recover()
                self._recovered = True
            running = store.list_jobs(self.database, states=("running",), limit=10_000)
            mine = [j for j in running if j["owner"] == self.owner]
            for job in mine:
                if job["category"] == "executor":
                    self._watch_executor(job)
                else:
                    self._watch_internal(job)
            busy_exec = sum(1 for j in mine if j["category"] == "executor")
            queued = sorted(store.list_jobs(self.database, states=("queued",), limit=10_000),
                            key=lambda j: j["created_at"])
            for job in queued:
                if self.only_jobs is not None and job["id"] not in self.only_jobs:
                    continue
                kind = KINDS.get(job["kind"])
                if kind is None:
                    continue  # a kind this process does not know (older/newer code): leave it
                if isinstance(kind, ExecutorKind):
                    if busy_exec >= self.concurrency:
                        continue
                    if self._start_executor(job, kind):
                        busy_exec += 1
                else:
                    self._start_internal(job, kind)

    # -- recovery --------------------------------------------------------------------------------
    def recover(self) -> None:
        for job in store.list_jobs(self.database, states=("running",), limit=10_000):
            if self.only_jobs is not None and job["id"] not in self.only_jobs:
                continue
            if job["owner"] == self.owner or _owner_alive(job["owner"]):
                continue
            if job["category"] == "executor" and job["handle"]:
                try:
                    status = self.backend.poll(job["handle"])
                except Exception as exc:  # backend unreachable now: say so rather than guess
                    store.finish_job(self.database, job["id"], "failed", error_code="hub_restart",
                                     error=f"hub restarted and could not reach the run: {exc}")
                    continue
                if not status.running and status.exit_code is None:  # it died with the hub (machine down)
                    log_path = self._dirs(job["id"])[2]
                    self.backend.cleanup(job["handle"], log_path)
                    why = (f"the hub restarted and the executor run had ended without an exit code "
                           f"({status.detail or 'unknown'}): it was killed with the hub or the machine went down")
                    store.finish_job(self.database, job["id"], "failed", message=why[:300], error_code="hub_restart",
                                     error=why, log_tail=_tail(log_path))
                    continue
                store.set_owner(self.database, job["id"], self.owner)
                log.info("re-attached job %s (%s, running=%s)", job["id"], job["handle"], status.running)
            else:
                store.finish_job(self.database, job["id"], "failed", error_code="hub_restart",
                                 error="the hub restarted while this job ran; nothing is left to re-attach")

    # -- executor jobs ---------------------------------------------------------------------------
    def _dirs(self, job_id: str) -> tuple[Path, Path, Path]:
        root = self.ctx.workspace / "jobs" / job_id
        return root / "in", root / "out", root / "job.log"

    def _fail(self, job: dict, exc: Exception, log_path: Path | None = None) -> None:
        code = exc.code if isinstance(exc, YmirError) else "internal"
        msg = exc.message if isinstance(exc, YmirError) else f"{type(exc).__name__}: {exc}"
        tail = _tail(log_path) if log_path else None
        store.finish_job(self.database, job["id"], "failed", message=msg[:300], error_code=code, error=msg,
                         log_tail=tail)

    def _start_executor(self, job: dict, kind: ExecutorKind) -> bool:
        in_dir, out_dir, log_path = self._dirs(job["id"])
        try:
            prepared = kind.prepare(self.ctx, job)
        except Exception as exc:
            if not isinstance(exc, YmirError):
                log.exception("preparing job %s failed", job["id"])
            if store.claim_job(self.database, job["id"], self.owner, self._backend_key):
                self._fail(job, exc)
            return False
        if not store.claim_job(self.database, job["id"], self.owner, self._backend_key):
            return False
        try:
            req = RunRequest(job_id=job["id"], image=prepared.image, in_dir=in_dir, out_dir=out_dir,
                             log_path=log_path, gpu_count=int(job.get("gpu_count") or 0))
            in_root, out_root = self.backend.roots(req)
            contract.prepare_inputs(
                in_dir, out_dir, task_id=job["id"], roots=Roots(in_root, out_root), config=prepared.config,
                inputs=prepared.inputs, training=prepared.training, mining=prepared.mining, infer=prepared.infer,
            )
            handle = self.backend.submit(req)
        except Exception as exc:
            if not isinstance(exc, YmirError):
                log.exception("starting job %s failed", job["id"])
            self._fail(job, exc, log_path)
            return False
        store.set_handle(self.database, job["id"], handle)
        store.update_progress(self.database, job["id"], 0.0, "running")
        return True

    def _watch_executor(self, job: dict) -> None:
        in_dir, out_dir, log_path = self._dirs(job["id"])
        handle = job["handle"]
        if not handle:
            return
        try:
            if job["cancel_requested"]:
                self.backend.cancel(handle)
                self.backend.cleanup(handle, log_path)
                store.finish_job(self.database, job["id"], "cancelled", message="cancelled",
                                 log_tail=_tail(log_path))
                return
            timeout = job["timeout_s"] or self.default_timeout_s
            if job["started_at"] and time.time() - job["started_at"] > timeout:
                self.backend.cancel(handle)
                self.backend.cleanup(handle, log_path)
                store.finish_job(self.database, job["id"], "failed", message=f"ran past its timeout of {timeout:g} s",
                                 error_code="job_timeout", error=f"ran past its timeout of {timeout:g} s",
                                 log_tail=_tail(log_path))
                return
            monitor = contract.read_monitor(out_dir)
            if monitor is not None and abs(monitor.percent - (job["progress"] or 0)) > 1e-6:
                store.update_progress(self.database, job["id"], monitor.percent, f"running {monitor.percent:.0%}")
                store.add_monitor_point(self.database, job["id"], monitor.timestamp or time.time(),
                                        monitor.percent, monitor.state)
            status = self.backend.poll(handle)
            if status.running:
                if monitor is not None and monitor.state == contract.STATE_ERROR:
                    self.backend.cancel(handle)
                else:
                    return
                status = self.backend.poll(handle)
            self.backend.cleanup(handle, log_path)
            if status.exit_code != 0 or (monitor is not None and monitor.state == contract.STATE_ERROR):
                why = (f"executor exited with code {status.exit_code}" if status.exit_code is not None
                       else f"executor ended without an exit code ({status.detail or 'unknown'})")
                if monitor is not None and monitor.state == contract.STATE_ERROR:
                    why = f"executor reported an error in monitor.txt (return code {monitor.return_code}); {why}"
                store.finish_job(self.database, job["id"], "failed", message=why, error_code="executor_failed",
                                 error=why, log_tail=_tail(log_path))
                return
            kind = KINDS[job["kind"]]
            result = kind.finish(self.ctx, job, out_dir)
            store.finish_job(self.database, job["id"], "done", message="done", result=result,
                             log_tail=_tail(log_path))
        except ContractError as exc:
            try:
                self.backend.cancel(handle)
                self.backend.cleanup(handle, log_path)
            finally:
                self._fail(job, exc, log_path)
        except Exception as exc:
            if not isinstance(exc, YmirError):
                log.exception("job %s failed while finishing", job["id"])
            self._fail(job, exc, log_path)

    # -- internal jobs ---------------------------------------------------------------------------
    def _start_internal(self, job: dict, kind: InternalKind) -> None:
        if not store.claim_job(self.database, job["id"], self.owner, "internal"):
            return
        job_id = job["id"]
        last = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            now = time.time()
            if now - last[0] < 0.25 and fraction < 1.0:  # keep database traffic low on hot loops
                return
            last[0] = now
            if store.get_job(self.database, job_id)["cancel_requested"]:
                raise Cancelled()
            store.update_progress(self.database, job_id, max(0.0, min(1.0, fraction)), message or None)

        def run() -> None:
            try:
                result = kind.run(self.ctx, store.get_job(self.database, job_id), progress)
                store.finish_job(self.database, job_id, "done", message="done", result=result or {})
            except Cancelled:
                store.finish_job(self.database, job_id, "cancelled", message="cancelled")
            except Exception as exc:
                if not isinstance(exc, YmirError):
                    log.exception("internal job %s failed", job_id)
                self._fail(store.get_job(self.database, job_id), exc)

        self._internal[job_id] = self._pool.submit(run)

    def _watch_internal(self, job: dict) -> None:
        fut = self._internal.get(job["id"])
        if fut is None:  # claimed by this owner but no future: should not happen; fail loudly
            store.finish_job(self.database, job["id"], "failed", error_code="internal",
                             error="internal job lost its worker thread")
        elif fut.done():
            self._internal.pop(job["id"], None)


def _tail(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL))
            return fh.read().decode(errors="replace")
    except FileNotFoundError:
        return None
