"""Progress of a sweep's counted loops (jobs of a sweep, cells of a job): elapsed time and an ETA.

Every step is one log line, `[2/5] cells of smollm2.fp8: demo_arc (elapsed 3m10s, eta 4m45s)`, so job logs and
Slurm output files (not terminals) show where a sweep is. On a terminal a tqdm bar stays below the log lines as
well (tqdm's logging redirect prints console log lines above it; log files are left alone). The ETA is the mean time
of the finished steps times the steps left; before the first has finished, what the same steps took last time, when
the caller knows it (a job's cells: the same benchmarks' last run for the model)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import IO, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

T = TypeVar("T")
log = logging.getLogger("evalkit.progress")

BAR_FORMAT = "{desc}: {n}/{total} |{bar}| [{elapsed}<{remaining}]{postfix}"
"""tqdm puts ", " before the postfix (the current item)."""


def duration(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def plain_line(what: str, index: int, total: int, label: str, elapsed: float, expected_s: float | None = None) -> str:
    """The log line when step `index` (1-based) of `total` starts; `elapsed` since the first step started.
    `expected_s`: what all the steps took last time, if known: the ETA before any step has finished (marked `~`)."""
    done = index - 1
    if done:
        eta = duration(elapsed / done * (total - done))
    else:
        eta = "?" if expected_s is None else "~" + duration(expected_s)
    return f"[{index}/{total}] {what}: {label} (elapsed {duration(elapsed)}, eta {eta})"


def track(
    items: Iterable[T],
    what: str,
    total: int,
    label: Callable[[T], str] = str,
    stream: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    expected_s: float | None = None,
) -> Iterator[T]:
    """Yield `items`, logging a line as each starts and one when all are done; with a bar when `stream` (default
    stderr) is a terminal. Leaving the loop early (break) closes the bar. `expected_s`: see `plain_line`."""
    out = stream if stream is not None else sys.stderr
    start = clock()
    n = 0
    with ExitStack() as stack:
        bar = None
        if out.isatty():
            bar = stack.enter_context(tqdm(total=total, desc=what, file=out, bar_format=BAR_FORMAT))
            stack.enter_context(logging_redirect_tqdm())
        for n, item in enumerate(items, 1):
            log.info("%s", plain_line(what, n, total, label(item), clock() - start, expected_s))
            if bar is not None:
                bar.set_postfix_str(label(item))
            yield item
            if bar is not None:
                bar.update(1)
    log.info("%s: %d/%d done in %s", what, n, total, duration(clock() - start))
