"""``python -m executor``: run the training / mining / inference task that ``env.yaml`` describes.

Exit status 0 on success; 2 for bad input (malformed env.yaml or config, empty index, unknown
classes, unusable model) and 1 for anything unexpected. On failure ``monitor.txt`` gets state 4
and the return code, and the message goes to stderr and ``ymir-executor-out.log``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from detkit.errors import YmirError
from executor.contract import Env, default_env_paths, load_env
from executor.outputs import STATE_RUNNING, Monitor, PhaseMonitor
from executor.settings import Settings, load_settings

log = logging.getLogger("executor")
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _set_threads(settings: Settings, cfg: dict) -> None:
    import torch

    threads = settings.num_threads or cfg.get("num_threads", 1)
    if threads:
        torch.set_num_threads(int(threads))


def run(env: Env, settings: Settings, monitor: Monitor) -> None:
    """Run every task ``env`` asks for, in YMIR's order: training, then mining/infer."""
    from executor.config import load_config  # torch-free; heavy imports follow below

    monitor.write(0.0, STATE_RUNNING)
    for key in ("models_dir", "tensorboard_dir"):
        env.output[key].mkdir(parents=True, exist_ok=True)
    candidate_kinds = [k for k, on in (("mining", env.run_mining), ("infer", env.run_infer)) if on]
    cfgs = {k: load_config(env, k) for k in (["training"] if env.run_training else []) + candidate_kinds}
    train_span = 0.8 if candidate_kinds and env.run_training else 1.0
    if env.run_training:
        from executor.train import run_training

        _set_threads(settings, cfgs["training"])
        run_training(env, cfgs["training"], PhaseMonitor(monitor, 0.0, train_span))
    if candidate_kinds:
        from executor.mine import run_candidates

        _set_threads(settings, cfgs[candidate_kinds[0]])
        start = train_span if env.run_training else 0.0
        run_candidates(env, {k: cfgs[k] for k in candidate_kinds}, PhaseMonitor(monitor, start, 1.0 - start))


def main() -> int:
    """Entry point; returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    settings = load_settings()
    _, monitor_path, log_path, _ = default_env_paths(settings)
    monitor = Monitor(monitor_path, "unknown")
    try:
        env = load_env(settings)
        monitor = Monitor(env.monitor_file, env.task_id)
        log_path = env.output["executor_log_file"]
        _log_to(log_path)
        log.info("task %s: training=%s mining=%s infer=%s", env.task_id, env.run_training, env.run_mining,
                 env.run_infer)
        run(env, settings, monitor)
    except YmirError as exc:
        _fail(monitor, log_path, EXIT_BAD_INPUT, f"{exc.code}: {exc.message}")
        return EXIT_BAD_INPUT
    except Exception as exc:  # the process boundary: anything unexpected still ends as state 4
        log.exception("task failed")
        _fail(monitor, log_path, EXIT_FAILED, f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    monitor.done()
    log.info("task done")
    return 0


def _fail(monitor: Monitor, log_path: Path, code: int, message: str) -> None:
    if not any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
        try:
            _log_to(log_path)
        except OSError:
            pass  # the output root itself is unusable; stderr still has the message
    log.error("task failed: %s", message)
    try:
        monitor.error(code)
    except OSError as exc:
        log.error("cannot write monitor file %s: %s", monitor.path, exc)


if __name__ == "__main__":
    sys.exit(main())
