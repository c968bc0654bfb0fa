"""The generate phase of the families that send their own requests (arena_hard, humaneval): one resumable loop.

A family pins what its outputs are generated with (`pin_generation_settings`), reads what its output file already
holds, and hands the rest here: `pending` says how much is left (the progress line) and whether anything is, then
`generate` sends one request per item on a thread pool over one HTTP client (`run_parallel`: the first failure
stops the items not started). What each request writes is the family's: every finished item is kept (appended, or
snapshotted by `finish`), so a rerun after a failure or a kill resumes with what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from evalkit.benchmarks.parallel import run_parallel
from evalkit.core.errors import BenchmarkError, EvalkitError
from evalkit.util.http import Client, RetryPolicy

T = TypeVar("T")


@dataclass(frozen=True)
class Outputs:
    """What a family generates, as its log lines and errors name it."""

    family: str
    """e.g. "humaneval"."""
    items: str
    """Plural noun of one request's output, e.g. "samples"."""
    path: Path
    """Where they are written (the error's log)."""
    log: logging.Logger
    """The family's logger: the progress line shows under its name in the job's log."""
    phase: str = "generation"
    """How a failure names the phase ("answer generation")."""


def pending(out: Outputs, todo: int, done: int) -> bool:
    """Log how much is left to generate; whether anything is."""
    out.log.info("%s: %d %s to generate (%d already there)", out.family, todo, out.items, done)
    return todo > 0


def generate(
    out: Outputs,
    todo: Sequence[T],
    one: Callable[[Client, T], None],
    *,
    base_url: str,
    policy: RetryPolicy,
    concurrency: int,
    finish: Callable[[], None] | None = None,
) -> None:
    """`one(client, item)` for every item, `concurrency` at a time; `finish` runs at the end, failed or not (a last
    snapshot). A failure is a BenchmarkError naming the output file and saying that a rerun resumes."""
    try:
        with Client(base_url, policy=policy) as http:
            run_parallel([partial(one, http, item) for item in todo], concurrency)
    except Exception as exc:
        reason = exc.what if isinstance(exc, EvalkitError) else repr(exc)
        raise BenchmarkError(
            f"{out.family}: {out.phase} failed: {reason}",
            log=out.path,
            hint=f"{out.items} written so far are kept; rerun generate to resume",
        ) from exc
    finally:
        if finish is not None:
            finish()
