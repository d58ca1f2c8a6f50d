"""LocalBackend: the executor as a child process in its own process group (the embedded default).

The executor is told where its roots are by ``YMIR_IN_DIR`` / ``YMIR_OUT_DIR`` (the env.yaml the
hub wrote already carries those paths). The command runs under a tiny ``sh`` wrapper that records
its exit code in ``out/.exit_code``, so a restarted hub can still learn how a run ended. Cancel
kills the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from detkit.errors import BadInput
from hub.jobs.base import RunRequest, RunStatus

EXIT_FILE = ".exit_code"
_WRAPPER = '"$@"; rc=$?; echo $rc > "$YMIR_EXIT_FILE.tmp" && mv "$YMIR_EXIT_FILE.tmp" "$YMIR_EXIT_FILE"; exit $rc'


def proc_start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class LocalBackend:
    key = "local"

    def __init__(self, config: dict):
        self._children: dict[int, subprocess.Popen] = {}

    def roots(self, req: RunRequest) -> tuple[str, str]:
        return str(req.in_dir), str(req.out_dir)

    def submit(self, req: RunRequest) -> str:
        if not req.image.local_command:
            raise BadInput(
                f"image {req.image.name!r} has no local command: it can only run under the docker backend"
            )
        if req.gpu_count:
            raise BadInput("the local backend cannot assign GPUs (gpu_count must be 0); use the docker backend")
        exit_file = req.out_dir / EXIT_FILE
        exit_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update(req.env)
        env.update(YMIR_IN_DIR=str(req.in_dir), YMIR_OUT_DIR=str(req.out_dir), YMIR_EXIT_FILE=str(exit_file),
                   PYTHONUNBUFFERED="1")
        req.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(req.log_path, "ab") as log:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _WRAPPER, "ymir-job", *req.image.local_command],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(req.out_dir), env=env, start_new_session=True,
            )
        self._children[proc.pid] = proc
        return f"pid:{proc.pid}:{proc_start_time(proc.pid) or ''}:{exit_file}"

    @staticmethod
    def _parse(handle: str) -> tuple[int, str, Path]:
        _, pid, start, exit_file = handle.split(":", 3)
        return int(pid), start, Path(exit_file)

    def _alive(self, pid: int, start: str) -> bool:
        proc = self._children.get(pid)
        if proc is not None:
            return proc.poll() is None
        now = proc_start_time(pid)  # not our child (hub restarted): same pid *and* same start time
        return now is not None and (not start or now == start) and not _is_zombie(pid)

    def poll(self, handle: str) -> RunStatus:
        pid, start, exit_file = self._parse(handle)
        if self._alive(pid, start):
            return RunStatus(True)
        proc = self._children.pop(pid, None)
        for _ in range(20):  # the wrapper writes the file just before it exits
            if exit_file.exists():
                with contextlib.suppress(ValueError):
                    return RunStatus(False, int(exit_file.read_text().strip()))
            time.sleep(0.05)
        if proc is not None and proc.returncode is not None:
            return RunStatus(False, proc.returncode, "killed" if proc.returncode < 0 else "")
        return RunStatus(False, None, "the process is gone and left no exit code")

    def cancel(self, handle: str) -> None:
        pid, start, _ = self._parse(handle)
        if not self._alive(pid, start):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + 5
        while time.time() < deadline and self._alive(pid, start):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        proc = self._children.get(pid)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def logs(self, handle: str, log_path: Path) -> str:
        try:
            return log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self, handle: str, log_path: Path) -> None:
        pid, _, _ = self._parse(handle)
        proc = self._children.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def make(config: dict) -> LocalBackend:
    return LocalBackend(config)
