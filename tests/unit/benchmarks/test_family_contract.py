"""The contract every benchmark family keeps (like Hydra's `LauncherTestSuite`): each adapter of `ADAPTERS`, on the
settings of its demo benchmark (conf/benchmarks/demo_*.yaml), parses them, plans its data sources without network,
describes itself for the plan, runs its checks and declares its facts. Then a family that lives outside evalkit,
in a temporary package named by its config (`adapter: "package.module:Class"`), is planned, described and checked
without editing any file of evalkit: what the README's "Adding a benchmark" promises."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from unit.pipeline.test_replicate_cells import plan

from evalkit.benchmarks import ADAPTERS, Benchmark, BenchmarkBase, NodeContext, PlanContext, get_adapter
from evalkit.benchmarks.base import Endpoint
from evalkit.core.checks import Check
from evalkit.core.config import BenchmarkConfig
from evalkit.core.errors import EvalkitError
from evalkit.core.workload import CellWorkload

PROTOCOL = sorted({name for name in vars(Benchmark) if not name.startswith("_")} | set(Benchmark.__annotations__))
"""Every member the protocol declares: its methods and its class-level facts."""
ENDPOINT = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", tokenizer="t", max_model_len=4096)


def demo_benchmarks(tmp_path: Path) -> dict[str, BenchmarkConfig]:
    """Every demo benchmark as the config composes it (its settings and its own local data)."""
    demos = ",".join(sorted(p.stem for p in Path("conf/benchmarks").glob("demo_*.yaml")))
    return plan(tmp_path, benchmarks=demos).cfg.benchmarks


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BenchmarkConfig]:
    return demo_benchmarks(tmp_path_factory.mktemp("demos"))


def demo_of(adapter: str, demos: Mapping[str, BenchmarkConfig]) -> BenchmarkConfig:
    found = sorted((name, b) for name, b in demos.items() if b.adapter == adapter and name.startswith("demo_"))
    assert found, f"family {adapter} has no conf/benchmarks/demo_*.yaml: every family ships a demo"
    return found[0][1]


def plan_context(bench: BenchmarkConfig, index: Any, tmp_path: Path) -> PlanContext:
    local = {d.path if d.name is None else f"{d.path}:{d.name}": dict(d.data_files) for d in bench.data.values()}
    return PlanContext(
        dict(bench.settings), local, bench.demo, index, work_dir=tmp_path, endpoint=ENDPOINT, seed=1, python="py"
    )


@pytest.fixture(params=sorted(ADAPTERS))
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_it_implements_the_protocol_and_declares_its_facts(family: str) -> None:
    adapter = get_adapter(family)
    missing = [name for name in PROTOCOL if not hasattr(adapter, name)]
    assert not missing, f"{family} lacks {missing}"
    assert isinstance(adapter.needs_idle_server, bool) and isinstance(adapter.chunks, bool)
    assert adapter.concurrency_key is None or isinstance(adapter.concurrency_key, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in adapter.sections.items())


def test_it_parses_its_demo_settings_into_a_typed_record(family: str, demos: Mapping[str, BenchmarkConfig]) -> None:
    adapter, bench = get_adapter(family), demo_of(family, demos)
    parsed = adapter.parse_settings(dict(bench.settings))
    assert dataclasses.is_dataclass(parsed), f"{family}.parse_settings returned {type(parsed).__name__}"
    if adapter.concurrency_key is not None:  # a replicate changes it: it must be one of the settings
        names = {f.name for f in dataclasses.fields(parsed)}
        assert adapter.concurrency_key in names, (family, adapter.concurrency_key, names)
    adapter.validate(dict(bench.settings))  # the demo's files ship with the repository


def test_it_plans_describes_and_estimates_itself_without_network(
    family: str, demos: Mapping[str, BenchmarkConfig], tmp_path: Path
) -> None:
    adapter, bench = get_adapter(family), demo_of(family, demos)
    for index in (None, adapter.planning_index()):  # with and without lm-eval's task index
        sources = adapter.planned_sources(plan_context(bench, index, tmp_path))
        assert all({"dataset", "source"} <= set(s) for s in sources), sources
        described = adapter.describe(plan_context(bench, index, tmp_path))
        assert set(described) & {"runs", "settings"} and "adapter" not in described, described
        json.dumps(described, default=str)  # the plan is a JSON document
    work = adapter.workload(dict(bench.settings))
    # None: no token facts; else what it counted, or what it could not
    assert work is None or (isinstance(work, CellWorkload) and (work.parts or work.unknown)), work


def test_it_checks_the_node(family: str, demos: Mapping[str, BenchmarkConfig], tmp_path: Path) -> None:
    adapter, bench = get_adapter(family), demo_of(family, demos)
    try:
        adapter.check_runtime(dict(bench.settings))
    except EvalkitError as err:  # allowed (no sandbox here), as long as it says how to fix it
        assert err.hint, err
    node = NodeContext(benchmark=bench.name, data=bench.data, hf_home=tmp_path / "hf", environ={})
    rows = adapter.node_checks(dict(bench.settings), node)
    assert all(isinstance(r, Check) for r in rows)
    assert f"data {bench.name}" in {r.name for r in rows}


class Unfinished(BenchmarkBase[dict[str, Any]]):
    """A family that declares its settings but none of its phases."""

    def parse_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return dict(settings)

    def prefetch(self, settings: dict[str, Any]) -> None: ...


def test_a_family_that_leaves_out_a_phase_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADAPTERS, "unfinished", f"{__name__}:Unfinished")
    with pytest.raises(EvalkitError, match="'unfinished' cannot be made") as err:
        get_adapter("unfinished")
    assert all(name in err.value.message for name in ("data_sources", "generate", "score")), err.value.message
    assert "Adding a benchmark" in (err.value.hint or "")


def test_the_ruler_task_names_compare_reads_are_the_task_table() -> None:
    from evalkit.benchmarks.lm_eval import names, ruler

    assert tuple(ruler.TASKS) == names.RULER_TASKS and names.RULER_GROUP == ruler.GROUP


# ------------------------------------------------------------------------------------------------ a family of one's own

TINY = '''
"""A family outside evalkit: one task, its documents counted from its settings."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalkit.benchmarks import BenchmarkBase, BenchmarkResult, PlanContext, RunContext
from evalkit.core.datasources import DataSource
from evalkit.core.errors import ConfigError
from evalkit.core.records import TaskScore
from evalkit.core.workload import CellWorkload, Workload


@dataclass(frozen=True)
class TinySettings:
    documents: int = 3
    concurrency: int = 2


class Tiny(BenchmarkBase[TinySettings]):
    concurrency_key = "concurrency"
    sections = {"tiny": "real-world"}

    def parse_settings(self, settings: Mapping[str, Any]) -> TinySettings:
        unknown = set(settings) - {"documents", "concurrency"}
        if unknown:
            raise ConfigError(f"tiny: unknown settings {sorted(unknown)}")
        return TinySettings(**settings)

    def generate(self, ctx: RunContext[TinySettings]) -> None: ...

    def score(self, ctx: RunContext[TinySettings]) -> BenchmarkResult:
        return BenchmarkResult([TaskScore("tiny", "acc", 100.0, n_samples=1, is_primary=True)], [])

    def data_sources(self, ctx: RunContext[TinySettings]) -> list[DataSource]:
        return [DataSource(dataset="tiny (generated)")]

    def prefetch(self, settings: dict[str, Any]) -> None: ...

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        return [{"dataset": "tiny", "source": "generated"}]

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload:
        s = self.parse_settings(settings)
        return CellWorkload((Workload("tiny", "tiny", s.documents, 10, 5, s.concurrency, "counted"),))
'''


@pytest.fixture
def tiny_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "site" / "tinyfam"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "family.py").write_text(textwrap.dedent(TINY))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield "tinyfam.family:Tiny"
    for name in [m for m in sys.modules if m == "tinyfam" or m.startswith("tinyfam.")]:
        del sys.modules[name]


def test_a_family_outside_evalkit_is_planned_described_and_checked(tiny_package: str, tmp_path: Path) -> None:
    from evalkit.doctor import run_doctor
    from evalkit.launch.plan_json import placeholders_of, plan_document
    from evalkit.pipeline.plan import plan_job

    assert isinstance(get_adapter(tiny_package), BenchmarkBase)
    cfg = plan(tmp_path, benchmarks="smoke_generate").cfg
    bench = cfg.benchmarks["smoke_generate"]
    bench.adapter, bench.settings, bench.data = tiny_package, {"documents": 4}, {}
    job = plan_job(cfg)  # validates it, checks its runtime, names its cells

    doc = plan_document([job], None, placeholders=placeholders_of([job], tmp_path), catalog=None)
    (cell,) = doc["jobs"][0]["cells"]
    assert cell["adapter"] == tiny_package
    assert cell["harness"] == {"adapter": tiny_package, "settings": {"documents": 4}}
    assert cell["data_sources"] == [{"dataset": "tiny", "source": "generated"}]

    rows = {c.name: c for c in run_doctor([cfg], launchers=[], versions={})}
    assert rows["data smoke_generate"].ok

    bench.settings = {"documnets": 4}
    rows = {c.name: c for c in run_doctor([cfg], launchers=[], versions={})}
    assert not rows["data smoke_generate"].ok and "documnets" in rows["data smoke_generate"].detail
    with pytest.raises(EvalkitError, match="documnets"):
        plan_job(cfg)
