"""Sweep progress: one log line per step with elapsed time and ETA (log files, Slurm output), plus a bar on a tty."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import pytest

from evalkit.util.progress import duration, plain_line, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _clock(times: list[float]) -> Callable[[], float]:
    it = iter(times)
    return lambda: next(it)


def test_eta_is_mean_step_time_times_steps_left() -> None:
    assert plain_line("cells of m.fp8", 1, 4, "demo_arc", 0.0) == "[1/4] cells of m.fp8: demo_arc (elapsed 0s, eta ?)"
    assert plain_line("jobs", 3, 5, "m.w8a8", 600.0) == "[3/5] jobs: m.w8a8 (elapsed 10m00s, eta 15m00s)"
    assert duration(3 * 3600 + 125) == "3h02m"


def test_plain_lines_where_output_is_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    with caplog.at_level(logging.INFO, logger="evalkit.progress"):
        seen = list(track(["a", "b", "c"], "jobs", 3, stream=out, clock=_clock([0, 0, 60, 120, 180])))
    assert seen == ["a", "b", "c"]
    assert caplog.messages == [
        "[1/3] jobs: a (elapsed 0s, eta ?)",
        "[2/3] jobs: b (elapsed 1m00s, eta 2m00s)",
        "[3/3] jobs: c (elapsed 2m00s, eta 1m00s)",
        "jobs: 3/3 done in 3m00s",
    ]
    assert out.getvalue() == ""  # no bar, no carriage returns in a log file


def test_bar_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    term = Terminal()
    with caplog.at_level(logging.INFO, logger="evalkit.progress"):
        for _ in track(["x", "y"], "cells of m.bf16", 2, label=str.upper, stream=term):
            pass
    bar = term.getvalue()
    assert "cells of m.bf16: 2/2" in bar and "<" in bar and "Y" in bar  # count, elapsed<remaining, current label
    assert "[2/2] cells of m.bf16: Y" in caplog.text  # the log file still gets its lines


def test_leaving_early_closes_the_bar_without_a_done_line(caplog: pytest.LogCaptureFixture) -> None:
    term = Terminal()
    with caplog.at_level(logging.INFO, logger="evalkit.progress"):
        for item in track([1, 2, 3], "cells", 3, stream=term):
            if item == 2:
                break
    assert "done in" not in caplog.text and "cells: 1/3" in term.getvalue()


def test_eta_from_the_first_step_when_the_last_run_is_known() -> None:
    assert plain_line("cells of m.fp8", 1, 4, "demo_arc", 0.0, expected_s=1500) == (
        "[1/4] cells of m.fp8: demo_arc (elapsed 0s, eta ~25m00s)"
    )
    # once a step has finished, this run's own pace decides
    assert plain_line("jobs", 3, 5, "m.w8a8", 600.0, expected_s=10) == "[3/5] jobs: m.w8a8 (elapsed 10m00s, eta 15m00s)"
