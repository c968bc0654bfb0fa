"""The small protocol every benchmark adapter implements.

A benchmark runs in two phases so that GPU time is spent only on generation:
`generate` talks to the served model and writes everything it needs to `ctx.work_dir`;
`score` turns those files into records, with no model server needed (judging, code execution and
parsing happen here). For harnesses that score inside the same process (lm-eval), `score` only parses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalkit.core.datasources import DataSource
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import Endpoint, SampleRecord, TaskScore
from evalkit.util.files import write_text_atomic


@dataclass(frozen=True)
class RunContext:
    """Everything a benchmark needs for one cell."""

    endpoint: Endpoint | None
    """None in the `score` phase (the server may be gone)."""
    work_dir: Path
    """Per-cell directory for harness outputs and logs; it survives the job."""
    settings: dict[str, Any]
    """The benchmark's resolved config section (adapter-specific, validated by the adapter)."""
    data_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    """Dataset id -> {split: local file}; see `evalkit.benchmarks.lm_eval.offline`."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for harness subprocesses (offline flags, cache dirs)."""
    hub_revisions: dict[str, str] = field(default_factory=dict)
    """Hub dataset id -> revision `evalkit prefetch` cached (its manifest); for `data_sources` only."""
    seed: int = 1234
    progress_dir: Path | None = None
    """Where the cell keeps finished parts of its work across an interrupted job (a requeue resumes from them):
    named by the cell's id, so other settings never reuse it, and removed by the job once the cell is committed.
    None: nothing is kept, every attempt starts over."""
    samples: dict[str, list[int]] | None = None
    """Run only these documents, {harness task: [doc ids]} (an adaptive chunk, evalkit/pipeline/adaptive.py); None:
    every document. Only adapters with `CHUNKS = True` accept it."""


@dataclass(frozen=True)
class BenchmarkResult:
    scores: list[TaskScore]
    samples: list[SampleRecord]


class Benchmark(Protocol):
    """A benchmark adapter. Adapters are listed explicitly in `evalkit.benchmarks.ADAPTERS`."""

    def validate(self, settings: dict[str, Any]) -> None:
        """Raise `ConfigError` naming the bad key and the valid choices. Called before anything starts."""
        ...

    def generate(self, ctx: RunContext) -> None:
        """Talk to `ctx.endpoint`; write outputs under `ctx.work_dir`. Raise `BenchmarkError` on failure."""
        ...

    def score(self, ctx: RunContext) -> BenchmarkResult:
        """Read `ctx.work_dir` and return the cell's scores and per-sample records."""
        ...

    def data_sources(self, ctx: RunContext) -> list[DataSource]:
        """What the cell reads: Hub datasets (with `ctx.hub_revisions`) and local files (path, sha256, rows). Recorded
        in the results beside every score; no network, no server."""
        ...

    def prefetch(self, settings: dict[str, Any]) -> None:
        """On a machine with internet: download and cache the data this benchmark reads (used by `evalkit prefetch`;
        jobs then run with the Hub offline)."""
        ...


def pin_generation_settings(path: Path, settings: dict[str, Any], what: str, start_over: str) -> None:
    """Record the settings a resumable generation runs under in `path`, or check them against the recorded ones.

    Generation appends to its output file across runs (a killed job resumes where it stopped), so samples made under
    other settings (another model, temperature, data file) must never be mixed in: a mismatch raises
    `BenchmarkError` naming the keys that changed; `start_over` says what to delete to begin again.
    """
    if path.exists():
        old = json.loads(path.read_text())
        changed = sorted(k for k in settings if old.get(k) != settings[k])
        if changed:
            raise BenchmarkError(
                f"{what} were generated with different {changed}",
                log=path,
                hint=f"restore the old settings, or {start_over} to start over",
            )
    else:  # atomic: a job killed mid-write must not leave a pin that no rerun can read
        write_text_atomic(path, json.dumps(settings, indent=1) + "\n")
