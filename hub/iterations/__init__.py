"""The iteration workflow (the YMIR guide's "Model iteration"): see :mod:`hub.iterations.workflow`."""

from hub.iterations.workflow import (
    history,
    next_round,
    refresh,
    refresh_all,
    run_step,
    show,
    skip_step,
    start,
)

__all__ = ["history", "next_round", "refresh", "refresh_all", "run_step", "show", "skip_step", "start"]
