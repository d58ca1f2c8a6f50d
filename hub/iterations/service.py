"""The hub's iteration ticker: a thread that moves every active round on as its jobs and tasks finish.

Pages and API calls refresh the round they show as well; the ticker makes rounds advance (a finished
training goes on to testing, a finished labeling task ends the label step) with nobody watching.
"""

from __future__ import annotations

import logging
import threading

from hub.iterations.workflow import refresh_all

log = logging.getLogger(__name__)


class IterationTicker:
    """Calls :func:`refresh_all` every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, workspace, interval_s: float = 2.0) -> None:
        self.workspace = workspace
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ymir-iterations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                refresh_all(self.workspace)
            except Exception:
                log.exception("iteration ticker")
