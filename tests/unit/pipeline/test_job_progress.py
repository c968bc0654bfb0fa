"""A cell's kept work across an interrupted job (`RunContext.progress_dir`): named by the cell's id, offered to the
adapter again on the next attempt, another id's never offered, and none left once the cell is committed. The adapter
is a registered one that only looks at its progress folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from unit.pipeline.test_replicate_cells import plan
from unit.pipeline.test_run_cells import Server

from evalkit.benchmarks import ADAPTERS, BenchmarkBase, BenchmarkResult, RunContext
from evalkit.core.datasources import DataSource
from evalkit.core.records import TaskScore
from evalkit.pipeline.job import JobSummary, cell_contexts, run_cells
from evalkit.results.store import Provenance, ResultsStore

SEEN: dict[str, set[str]] = {}


class Resumable(BenchmarkBase[dict[str, Any]]):
    """Reports what its progress folder's parent holds when it starts, then keeps a finished part there."""

    def parse_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return dict(settings)  # its settings are the mapping itself: it reads none of them

    def validate(self, settings: dict[str, Any]) -> None: ...

    def generate(self, ctx: RunContext[dict[str, Any]]) -> None:
        assert ctx.progress_dir is not None
        SEEN[ctx.work_dir.name] = {
            str(p.relative_to(ctx.progress_dir.parent)) for p in ctx.progress_dir.parent.rglob("*")
        }
        ctx.progress_dir.mkdir(parents=True, exist_ok=True)
        (ctx.progress_dir / "part-2").write_text("done")

    def score(self, ctx: RunContext[dict[str, Any]]) -> BenchmarkResult:
        return BenchmarkResult([TaskScore("t", "acc", 50.0, n_samples=1, is_primary=True)], [])

    def data_sources(self, ctx: RunContext[dict[str, Any]]) -> list[DataSource]:
        return []

    def prefetch(self, settings: dict[str, Any]) -> None: ...


def test_a_cell_resumes_only_its_own_ids_work_and_keeps_none_once_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ADAPTERS, "resumable", f"{__name__}:Resumable")
    p = plan(tmp_path, benchmarks="smoke_generate")
    p.cfg.benchmarks["smoke_generate"].adapter = "resumable"
    [cell] = p.cells
    ctx_of = cell_contexts(p.cfg, tmp_path / "jobs")
    own = ctx_of(cell, None).progress_dir
    assert own is not None and own.name == cell.fingerprint[:16]
    # an interrupted attempt of this cell, and one of the same benchmark under settings since changed
    (own / "part-1").parent.mkdir(parents=True)
    (own / "part-1").write_text("done")
    (own.parent / "0123456789abcdef").mkdir()
    SEEN.clear()
    prov = Provenance("0", "c", "l", "v", checkpoint_path="", config_hash="h")
    summary = JobSummary("j")
    run_cells([cell], p.cfg, Server(), ctx_of, ResultsStore.open_for_writing(tmp_path / "r"), prov, summary)
    assert summary.done == ["smoke_generate"]
    assert SEEN["smoke_generate"] == {own.name, f"{own.name}/part-1"}
    assert not own.parent.exists()
