"""One progress display for every long operation of the command-line tools.

On a terminal it is a live tqdm bar. Anywhere else (a file, a pipe, a CI log) a bar would write thousands of
carriage-return frames, so it prints plain lines instead: one when the operation starts, one each time it
crosses another tenth of its total, one when it ends. One operation gets one display: a phase change (a new
total or description) moves the same bar, never opens a second one.

    with progress_bar("importing", total=0, unit="img") as bar:
        bar.set(done, total, "decoding")     # absolute position (callbacks that report done / total)
        bar.update(1)                        # or relative steps
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class LineProgress:
    """The non-terminal display: a line at the start, at each further tenth, and at the end."""

    def __init__(self, desc: str, total: int, unit: str, stream: TextIO, step: float = 0.1):
        self.desc, self.total, self.unit, self.stream, self.step = desc, int(total or 0), unit, stream, step
        self.n = 0
        self._next = step
        self._t0 = time.monotonic()
        self._closed = False
        self._line(f"started{f' ({self.total} {unit})' if self.total else ''}")

    def _line(self, what: str) -> None:
        print(f"[{self.desc}] {what}", file=self.stream, flush=True)

    def set(self, n: int, total: int | None = None, desc: str | None = None) -> None:
        if desc and desc != self.desc:
            self.desc = desc
        if total is not None and int(total) != self.total:
            self.total, self._next = int(total), self.step
            self._line(f"{self.total} {self.unit} to do")
        self.n = int(n)
        if self.total > 0:
            frac = self.n / self.total
            if frac >= self._next and frac < 1:
                pct = int(frac / self.step + 1e-9) * round(self.step * 100)
                self._line(f"{pct}% ({self.n}/{self.total} {self.unit})")
                while self._next <= frac:
                    self._next += self.step

    def update(self, k: int = 1) -> None:
        self.set(self.n + k)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        total = f"/{self.total}" if self.total else ""
        self._line(f"done: {self.n}{total} {self.unit} in {time.monotonic() - self._t0:.1f} s")


class BarProgress:
    """The terminal display: one tqdm bar, moved in place by phase changes."""

    def __init__(self, desc: str, total: int, unit: str, stream: TextIO):
        from tqdm import tqdm

        self._bar = tqdm(total=total or None, desc=desc, unit=unit, file=stream, leave=True, dynamic_ncols=True)

    @property
    def n(self) -> int:
        return int(self._bar.n)

    def set(self, n: int, total: int | None = None, desc: str | None = None) -> None:
        if total is not None and total != self._bar.total:
            self._bar.reset(total=total or None)
        if desc:
            self._bar.set_description(desc[:40], refresh=False)
        self._bar.n = int(n)
        self._bar.refresh()

    def update(self, k: int = 1) -> None:
        self._bar.update(k)

    def close(self) -> None:
        self._bar.close()


class NoProgress:
    """Nothing shown (``--json`` output, or a caller that asked for quiet)."""

    n = 0

    def set(self, n: int, total: int | None = None, desc: str | None = None) -> None:
        self.n = int(n)

    def update(self, k: int = 1) -> None:
        self.n += k

    def close(self) -> None:
        return None


class _Managed:
    def __init__(self, impl):
        self.impl = impl

    def __getattr__(self, name):
        return getattr(self.impl, name)

    def __enter__(self):
        return self.impl

    def __exit__(self, *exc):
        self.impl.close()


def progress_bar(desc: str, total: int = 0, unit: str = "it", *, disable: bool = False,
                 stream: TextIO | None = None, tty: bool | None = None):
    """The display for one operation on ``stream`` (default stderr): a bar on a terminal, lines elsewhere,
    nothing when ``disable``. Use it as a context manager or call ``close()``."""
    stream = stream or sys.stderr
    if disable:
        return _Managed(NoProgress())
    if tty is None:
        tty = bool(getattr(stream, "isatty", lambda: False)())
    impl = BarProgress(desc, total, unit, stream) if tty else LineProgress(desc, total, unit, stream)
    return _Managed(impl)
