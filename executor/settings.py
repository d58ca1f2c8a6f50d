"""Process settings of the executor: the ONE place that reads environment variables.

Under YMIR (docker) the executor sees ``/in`` and ``/out``. Under the hub's local backend it runs
as a child process and is told its roots by ``YMIR_IN_DIR`` / ``YMIR_OUT_DIR``; the env.yaml it
finds at ``$YMIR_IN_DIR/env.yaml`` then carries paths under those roots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where the executor reads and writes, and how many torch threads it uses by default."""

    in_dir: Path
    out_dir: Path
    num_threads: int | None  # None: take the config's num_threads


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read ``YMIR_IN_DIR``, ``YMIR_OUT_DIR`` and ``YMIR_NUM_THREADS`` (optional) once."""
    env = os.environ if environ is None else environ
    threads = env.get("YMIR_NUM_THREADS", "").strip()
    return Settings(
        in_dir=Path(env.get("YMIR_IN_DIR") or "/in"),
        out_dir=Path(env.get("YMIR_OUT_DIR") or "/out"),
        num_threads=int(threads) if threads.isdigit() and int(threads) > 0 else None,
    )
