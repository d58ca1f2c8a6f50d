"""The progress display: plain lines (start, each tenth, end) off a terminal, a live bar on one, one per
operation even when its phase changes."""

from __future__ import annotations

import io

from detkit.progress import progress_bar


def test_off_a_terminal_it_prints_a_line_per_tenth_and_no_carriage_returns():
    out = io.StringIO()
    with progress_bar("importing", total=1000, unit="img", stream=out) as bar:
        for _ in range(1000):
            bar.update(1)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert lines[0] == "[importing] started (1000 img)"
    assert [ln.split()[1] for ln in lines[1:-1]] == [f"{p}%" for p in range(10, 100, 10)]
    assert lines[-1].startswith("[importing] done: 1000/1000 img in ")
    assert len(lines) == 11


def test_a_phase_change_moves_the_same_display():
    out = io.StringIO()
    bar = progress_bar("import", stream=out)
    bar.set(0, 10, "unpacking")
    bar.set(10, 10)
    bar.set(0, 200, "decoding")
    for i in range(0, 201, 50):
        bar.set(i)
    bar.close()
    bar.close()  # twice is once
    lines = out.getvalue().splitlines()
    assert sum(ln.startswith("[") and "started" in ln for ln in lines) == 1
    assert sum("done:" in ln for ln in lines) == 1
    assert "[decoding] 200 img" not in out.getvalue() and "[decoding] 200 it to do" in out.getvalue()
    assert "[decoding] 50%" in out.getvalue()


def test_on_a_terminal_it_is_one_live_bar_and_disabled_is_silent():
    out = io.StringIO()
    with progress_bar("training", total=100, unit="%", stream=out, tty=True) as bar:
        for _ in range(100):
            bar.update(1)
    assert "\r" in out.getvalue() and "100/100" in out.getvalue()
    quiet = io.StringIO()
    with progress_bar("x", total=5, stream=quiet, disable=True) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""
