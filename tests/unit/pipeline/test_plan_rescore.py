"""`evalkit score` after a forced re-generation of a done cell (`evalkit run ... phase=generate`): the cell's folder
holds a generation newer than its committed run, and the score phase plans it instead of calling it complete. An
older marker (the one the committed run scored) plans nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from unit.pipeline.test_replicate_cells import V1, plan

from evalkit.core.records import TaskScore
from evalkit.pipeline.cells import cell_dir_name
from evalkit.pipeline.generated import write_marker
from evalkit.pipeline.plan import job_dir_of
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

PROV = Provenance("0", "c", "0.4.13", "0.32", "/ckpt", "h")


def test_score_plans_a_done_cell_generated_again_since_its_commit(tmp_path: Path) -> None:
    first = plan(tmp_path, "phase=score", benchmarks=V1)
    (cell,) = first.cells
    committed = datetime.now(timezone.utc)
    store = ResultsStore.open_for_writing(tmp_path / "results")
    run = RunInfo(new_run_id(), committed - timedelta(minutes=5), committed, "log", PROV, "[]", True)
    store.commit_cell(cell, run, [TaskScore("arc_challenge", "acc", 50.0, None, 4, is_primary=True)], [])
    folder = job_dir_of(first.cfg) / cell_dir_name(cell)
    folder.mkdir(parents=True)

    write_marker(folder, cell, PROV, committed - timedelta(minutes=5))  # the generation the commit scored
    assert plan(tmp_path, "phase=score", benchmarks=V1).pending == []

    write_marker(folder, cell, PROV, committed + timedelta(seconds=1))  # generated again after the commit
    assert plan(tmp_path, "phase=score", benchmarks=V1).pending == [cell]
    # only the score phase reads markers: a plain sweep still finds the cell complete
    assert plan(tmp_path, benchmarks=V1).pending == []
