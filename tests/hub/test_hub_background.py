"""The background pool: queued work runs oldest first on a bounded set of threads, close() drains it."""

from __future__ import annotations

import threading
import time

import pytest

from hub.datasets.background import Background


def test_pool_runs_everything_on_bounded_threads():
    bg = Background(workers=2)
    seen, threads = [], set()
    lock = threading.Lock()

    def task(i):
        time.sleep(0.01)
        with lock:
            seen.append(i)
            threads.add(threading.current_thread().name)

    for i in range(10):
        bg.submit(f"t{i}", task, i)
    assert bg.wait(10) and sorted(seen) == list(range(10))
    assert len(threads) == 2 and bg.active() == 0
    bg.close()
    with pytest.raises(RuntimeError):
        bg.submit("late", task, 99)


def test_a_failing_task_does_not_stop_the_pool():
    bg = Background(workers=1)
    done = []
    bg.submit("bad", lambda: 1 / 0)
    bg.submit("good", lambda: done.append(1))
    assert bg.wait(5) and done == [1]
    bg.close()
