"""The small protocol every benchmark adapter implements, and everything the rest of evalkit asks of a family.

A benchmark runs in two phases so that GPU time is spent only on generation:
`generate` talks to the served model and writes everything it needs to `ctx.work_dir`;
`score` turns those files into records, with no model server needed (judging, code execution and
parsing happen here). For harnesses that score inside the same process (lm-eval), `score` only parses.

Around the run, a family answers for itself what the planner, the dry run, the cost estimate and `evalkit doctor`
ask (its facts as class attributes, the rest as methods): code outside `evalkit.benchmarks` never branches on an
adapter's name. `BenchmarkBase` holds the answers of a family that has nothing special to say.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from evalkit.core.checks import Check
from evalkit.core.datasources import DataSource
from evalkit.core.errors import BenchmarkError, EvalkitError
from evalkit.core.records import Endpoint, SampleRecord, TaskScore
from evalkit.core.workload import CellWorkload
from evalkit.util.files import write_text_atomic

if TYPE_CHECKING:  # an annotation only: the sandbox imports this package in a bare interpreter, without Hydra
    from evalkit.core.config import DatasetOverride


S = TypeVar("S")
"""A family's typed settings record (what its `parse_settings` returns)."""


@dataclass(frozen=True)
class RunContext(Generic[S]):
    """Everything a benchmark needs for one cell."""

    endpoint: Endpoint | None
    """None in the `score` phase (the server may be gone)."""
    work_dir: Path
    """Per-cell directory for harness outputs and logs; it survives the job."""
    settings: S
    """The cell's settings as its family's typed record: parsed once, by the job (`Benchmark.parse_settings`), from
    the benchmark's config section (a baseline replicate's with its concurrency)."""
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
    every document. Only adapters with `chunks = True` accept it."""


@dataclass(frozen=True)
class BenchmarkResult:
    scores: list[TaskScore]
    samples: list[SampleRecord]


@dataclass(frozen=True)
class PlanContext:
    """What a family may use to describe a cell in the plan (`evalkit sweep --dry-run`): the config alone, never
    the machine (no files read, no server, no network), so the plan is the same text on any checkout."""

    settings: Mapping[str, Any]
    """The benchmark's settings as configured (for `describe`: the cell's, with a baseline replicate's
    concurrency)."""
    local_data: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The benchmark's own local data (`benchmarks.<name>.data`): dataset id -> {split: file as configured}."""
    demo: bool = False
    """A demo benchmark (`BenchmarkConfig.demo`): it reads shipped files, not the releases `prefetch` fetches."""
    index: Any = None
    """The family's planning index, as the plan loaded it (`Benchmark.planning_index`); None where unavailable."""
    work_dir: Path | None = None
    """The cell's folder in its job's (for `describe`)."""
    endpoint: Endpoint | None = None
    """The endpoint the job's server will have (its port a placeholder; for `describe`)."""
    seed: int = 0
    """The cell's seed (for `describe`)."""
    python: str = ""
    """The interpreter the job runs harnesses with (for `describe`)."""


@dataclass(frozen=True)
class NodeContext:
    """What a family's node checks (`evalkit doctor`) may look at, gathered by the doctor."""

    benchmark: str
    """The benchmark's name (rows are named after it)."""
    data: Mapping[str, DatasetOverride] = field(default_factory=dict)
    """The benchmark's own local data (`benchmarks.<name>.data`)."""
    hf_home: Path = Path("~/.cache/huggingface")
    """The Hugging Face cache the jobs will read offline."""
    environ: Mapping[str, str] = field(default_factory=dict)
    """The environment the jobs inherit (API keys)."""


class Benchmark(Protocol[S]):
    """A benchmark adapter: one per family, listed in `evalkit.benchmarks.ADAPTERS` (or named by a config's
    `adapter: "package.module:Class"`). Subclass `BenchmarkBase[<its settings record>]` for the defaults;
    `tests/unit/benchmarks/test_family_contract.py` checks every family against this protocol. `S` is the family's
    typed settings record: what `parse_settings` returns is what `generate`, `score` and `data_sources` find in
    `ctx.settings`."""

    needs_idle_server: ClassVar[bool]
    """It measures the server itself (latency, throughput): a job runs its cells alone, after the others."""
    concurrency_key: ClassVar[str | None]
    """The setting holding its requests in flight, which a baseline replicate varies; None: it cannot be
    replicated."""
    sections: ClassVar[Mapping[str, str]]
    """Suite -> the study's report section its rows are grouped under ("academic", "real-world", ...); suites it
    does not name land in "other"."""
    chunks: ClassVar[bool]
    """It runs a chunk of its documents (`RunContext.samples`): adaptive mode may stop it early."""

    def parse_settings(self, settings: Mapping[str, Any]) -> S:
        """The settings as the family's typed record; `ConfigError` naming the bad key and the valid choices. Reads
        no files (that is `validate`). The job calls it once per cell and hands the record to the phases in
        `RunContext.settings`."""
        ...

    def validate(self, settings: dict[str, Any]) -> None:
        """Raise `ConfigError` naming the bad key and the valid choices. Called before anything starts; includes
        "is the data there"."""
        ...

    def generate(self, ctx: RunContext[S]) -> None:
        """Talk to `ctx.endpoint`; write outputs under `ctx.work_dir`. Raise `BenchmarkError` on failure."""
        ...

    def score(self, ctx: RunContext[S]) -> BenchmarkResult:
        """Read `ctx.work_dir` and return the cell's scores and per-sample records."""
        ...

    def data_sources(self, ctx: RunContext[S]) -> list[DataSource]:
        """What the cell reads: Hub datasets (with `ctx.hub_revisions`) and local files (path, sha256, rows). Recorded
        in the results beside every score; no network, no server."""
        ...

    def prefetch(self, settings: dict[str, Any]) -> None:
        """On a machine with internet: download and cache the data this benchmark reads (used by `evalkit prefetch`;
        jobs then run with the Hub offline)."""
        ...

    def planning_index(self) -> Any:
        """What the family looks things up in to plan (lm-eval's task index), loaded once per plan; None when it
        needs none or it is not installed here."""
        ...

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        """Where each dataset of the cell will come from, as configured (the plan's `data_sources`): what
        `data_sources` records after the run, without reading a file."""
        ...

    def describe(self, plan: PlanContext) -> dict[str, Any]:
        """How the cell's harness will be invoked (the plan's `harness`, after its `adapter` key): commands
        (`runs`) or the resolved `settings` (the plan shows long strings by their hash)."""
        ...

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload | None:
        """What the cell asks of the server, in tokens (the cost estimate's input); None: no token facts."""
        ...

    def check_runtime(self, settings: dict[str, Any]) -> None:
        """Raise an `EvalkitError` with the fix when this node cannot score the cell (HumanEval: no sandbox).
        Called at planning when the job scores, and again by a Slurm job on its node."""
        ...

    def node_checks(self, settings: dict[str, Any], node: NodeContext) -> list[Check]:
        """`evalkit doctor`'s rows for this benchmark: at least its data row (`data <benchmark>`)."""
        ...


class BenchmarkBase(abc.ABC, Generic[S]):
    """The defaults of the `Benchmark` protocol: a family with nothing special to say (no idle server, no
    concurrency setting, no report section, no chunks, no index, no token facts, no runtime needs, its data row
    from `validate`) fills only `parse_settings`, `validate`, `generate`, `score`, `data_sources` and `prefetch`.

    `S`, its settings record, is named where the family subclasses it (`class HumanEval(BenchmarkBase[
    HumanEvalSettings])`): mypy then holds `parse_settings` and the phases' `ctx.settings` to the same type. The
    methods without a default are abstract, so a family missing one fails when it is loaded, naming the method."""

    needs_idle_server: ClassVar[bool] = False
    concurrency_key: ClassVar[str | None] = None
    sections: ClassVar[Mapping[str, str]] = {}
    chunks: ClassVar[bool] = False

    @abc.abstractmethod
    def parse_settings(self, settings: Mapping[str, Any]) -> S: ...

    @abc.abstractmethod
    def generate(self, ctx: RunContext[S]) -> None: ...

    @abc.abstractmethod
    def score(self, ctx: RunContext[S]) -> BenchmarkResult: ...

    @abc.abstractmethod
    def data_sources(self, ctx: RunContext[S]) -> list[DataSource]: ...

    @abc.abstractmethod
    def prefetch(self, settings: dict[str, Any]) -> None: ...

    def validate(self, settings: dict[str, Any]) -> None:
        self.parse_settings(settings)

    def planning_index(self) -> Any:
        return None

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        return []

    def describe(self, plan: PlanContext) -> dict[str, Any]:
        return {"settings": dict(plan.settings)}

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload | None:
        return None

    def check_runtime(self, settings: dict[str, Any]) -> None:
        return None

    def node_checks(self, settings: dict[str, Any], node: NodeContext) -> list[Check]:
        return [data_check(node.benchmark, lambda: self.validate(settings))]


def data_check(benchmark: str, validate: Callable[[], None]) -> Check:
    """The `data <benchmark>` row: `validate()` passing, or what it refused and the fix."""
    try:
        validate()
    except EvalkitError as err:
        return Check(f"data {benchmark}", False, err.what, err.hint or "")
    return Check(f"data {benchmark}", True, "present")


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
