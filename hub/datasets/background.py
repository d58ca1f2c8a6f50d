"""Run dataset imports and operations in the background of the hub process.

One small module on purpose: the hub's job runner (``hub/jobs``) will replace it by internal job
rows. Until then a daemon thread per task runs ``fn(*args, progress=...)``; progress lands in the
version row, so pages and the API poll the database, not this object.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Background:
    """Threads running long hub work; :meth:`close` waits for them a little, then lets them go."""

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def submit(self, name: str, fn: Callable[..., object], *args, **kwargs) -> threading.Thread:
        """Start ``fn(*args, **kwargs)`` in a daemon thread; its errors are logged (the function records them)."""

        def _run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception:  # the task has already recorded its failure in its row
                log.debug("background task %s failed", name, exc_info=True)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=_run, name=f"ymir-{name}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def active(self) -> int:
        with self._lock:
            return len(self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every running task; True when none is left."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        return self.active() == 0

    def close(self, timeout: float = 5.0) -> None:
        if not self.wait(timeout):
            log.warning("%d background task(s) still running at shutdown", self.active())
