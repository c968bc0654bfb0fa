"""The results store: schema contract, atomic per-cell commits, recovery after kills, corrupt files."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalkit.core.cell import Cell
from evalkit.core.errors import StoreError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.schema import SAMPLES_SCHEMA, SCORES_SCHEMA
from evalkit.results.store import (
    CellState,
    Provenance,
    ResultsStore,
    RunInfo,
    new_run_id,
)

PROV = Provenance("0.1.0", "abc123", "0.4.13", "0.32.0", "/ckpt", "cfg0")


def cell(benchmark: str = "demo_leaderboard_v1", fingerprint: str = "f" * 64, fmt: str = "bf16") -> Cell:
    return Cell("m", fmt, benchmark, "leaderboard_v1", "hub:x/y", fingerprint)


def run(log: str = "/jobs/x.log") -> RunInfo:
    now = datetime.now(timezone.utc)
    return RunInfo(new_run_id(), now, now, log, PROV)


def scores(n: int = 3, base: float = 50.0) -> list[TaskScore]:
    return [TaskScore(f"task{i}", "acc", base + i, 1.0, 10, is_primary=True) for i in range(n)]


def samples(n: int = 4) -> list[SampleRecord]:
    return [SampleRecord("task0", i, f"h{i}", "A", "B", {"acc": float(i % 2)}) for i in range(n)]


# ---------------------------------------------------------------- the contract
_STR, _F64, _TS = pa.string(), pa.float64(), pa.timestamp("us", tz="UTC")
CONTRACT_SCORES = [
    *((name, _STR, False) for name in ("model", "format", "benchmark", "suite", "task", "metric", "filter")),
    *((name, _F64, True) for name in ("value", "stderr", "normalized")),
    ("is_primary", pa.bool_(), False),
    ("higher_is_better", pa.bool_(), False),
    ("n_samples", pa.int64(), False),
    ("status", _STR, False),
    ("error", _STR, True),
    *((name, _STR, False) for name in ("log_path", "cell_id", "run_id")),
    ("started_at", _TS, False),
    ("finished_at", _TS, False),
    *((name, _STR, False) for name in ("checkpoint", "checkpoint_path", "evalkit_version", "evalkit_commit")),
    *((name, _STR, False) for name in ("lm_eval_version", "vllm_version", "config_hash")),
    ("data_sources", _STR, True),
    ("data_overridden", pa.bool_(), True),
    ("served_dtype", _STR, True),
]
CONTRACT_SAMPLES = [
    *((name, _STR, False) for name in ("model", "format", "benchmark", "task")),
    ("doc_id", pa.int64(), False),
    *((name, _STR, False) for name in ("prompt_hash", "target", "response")),
    ("metrics", pa.map_(_STR, _F64), False),
    ("cell_id", _STR, False),
    ("run_id", _STR, False),
]


@pytest.mark.parametrize("schema, contract", [(SCORES_SCHEMA, CONTRACT_SCORES), (SAMPLES_SCHEMA, CONTRACT_SAMPLES)])
def test_the_schemas_derived_from_the_records_keep_the_written_contract(
    schema: pa.Schema, contract: list[tuple[str, pa.DataType, bool]]
) -> None:
    """The columns come from `TaskScore` / `SampleRecord` and the store's row parts (evalkit/results/schema.py); files
    already written fix their order, types and nullability. A new record field is a new column at its place here."""
    assert [(f.name, f.type, f.nullable) for f in schema] == contract


# ---------------------------------------------------------------- commit / read
def test_commit_and_read_back(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    c, r = cell(), run()
    store.commit_cell(c, r, scores(), samples())
    df = store.read_scores()
    assert len(df) == 3 and set(df["status"]) == {"ok"} and set(df["cell_id"]) == {c.cell_id}
    assert df["value"].tolist() == [50.0, 51.0, 52.0]
    smp = store.read_samples()
    assert len(smp) == 4 and set(smp["run_id"]) == {r.run_id}
    assert dict(smp.iloc[1]["metrics"]) == {"acc": 1.0}
    # plain pandas sees exactly the same tables (the staging dirs are invisible to it)
    assert len(pd.read_parquet(tmp_path / "scores")) == 3
    assert store.cell_record(c).state is CellState.DONE


def test_rerun_replaces_only_that_cell(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    a, b = cell("bench_a"), cell("bench_b")
    store.commit_cell(a, run(), scores(2, 10), samples(2))
    store.commit_cell(b, run(), scores(2, 20), samples(3))
    r2 = run()
    store.commit_cell(a, r2, scores(2, 90), samples(5))
    df = store.read_scores()
    assert sorted(df[df.benchmark == "bench_a"]["value"]) == [90.0, 91.0]
    assert sorted(df[df.benchmark == "bench_b"]["value"]) == [20.0, 21.0]
    smp = store.read_samples()
    assert (smp.benchmark == "bench_a").sum() == 5 and set(smp[smp.benchmark == "bench_a"].run_id) == {r2.run_id}


def test_states_missing_stale_failed(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    c = cell()
    assert store.cell_record(c).state is CellState.MISSING
    store.record_failure(c, run("/jobs/fail.log"), "server died")
    rec = store.cell_record(c)
    assert rec.state is CellState.FAILED and rec.error == "server died" and rec.log_path == "/jobs/fail.log"
    store.commit_cell(c, run(), scores(), samples())
    assert store.cell_record(c).state is CellState.DONE
    # a failed re-run of a finished cell loses nothing
    store.record_failure(c, run(), "judge timed out")
    assert store.cell_record(c).state is CellState.DONE
    # changed settings -> new fingerprint -> the old rows are stale
    assert store.cell_record(cell(fingerprint="0" * 64)).state is CellState.STALE


def test_empty_scores_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no scores"):
        ResultsStore.open_for_writing(tmp_path).commit_cell(cell(), run(), [], samples())


def test_corrupt_file_names_file_and_fix(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    store.commit_cell(cell(), run(), scores(), samples())
    bad = tmp_path / "scores" / f"{cell().key}.parquet"
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(StoreError) as info:
        store.read_scores()
    assert str(bad) in str(info.value) and "mv " in str(info.value)


def test_foreign_table_missing_columns(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    pd.DataFrame({"model": ["m"], "value": [1.0]}).to_parquet(tmp_path / "scores" / "hand.parquet")
    with pytest.raises(StoreError, match="missing columns"):
        store.read_scores()


# ---------------------------------------------------------------- kills
def test_data_sources_recorded_on_ok_and_failed_rows(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    sources = '[{"dataset": "openai/gsm8k:main", "hub_revision": "unpinned"}]'
    r = dataclasses.replace(run(), data_sources=sources, data_overridden=True)
    store.commit_cell(cell(), r, scores(2), samples())
    store.record_failure(cell("leaderboard_v1"), dataclasses.replace(r, data_overridden=False), "boom")
    df = store.read_scores().set_index("benchmark")
    assert set(df["data_sources"]) == {sources}
    assert df.loc["demo_leaderboard_v1", "data_overridden"].tolist() == [True, True]
    assert df.loc["leaderboard_v1", "status"] == "failed" and not df.loc["leaderboard_v1", "data_overridden"]


def test_served_dtype_is_recorded_on_every_row_of_the_run(tmp_path: Path) -> None:
    """Issue 16: a CPU without native bf16 serves a bf16 checkpoint in float32; the rows say so (a GPU run's say
    what server.dtype was), so a recovery is never read across dtypes unknowingly."""
    store = ResultsStore.open_for_writing(tmp_path)
    r = run()
    fp32 = dataclasses.replace(r, provenance=dataclasses.replace(r.provenance, served_dtype="float32"))
    store.commit_cell(cell(), fp32, scores(2), samples())
    store.record_failure(cell("leaderboard_v1"), r, "boom")
    df = store.read_scores().set_index("benchmark")
    assert df.loc["demo_leaderboard_v1", "served_dtype"].tolist() == ["float32", "float32"]
    assert df.loc["leaderboard_v1", "served_dtype"] is None or pd.isna(df.loc["leaderboard_v1", "served_dtype"])


def test_files_from_before_the_data_columns_still_read(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    store.commit_cell(cell(), run(), scores(1), samples())
    path = tmp_path / "scores" / f"{cell().key}.parquet"
    old = pq.read_table(path).drop_columns(["data_sources", "data_overridden", "served_dtype"])
    pq.write_table(old, path)
    df = store.read_scores()
    assert len(df) == 1 and df["data_sources"].isna().all() and df["data_overridden"].isna().all()
    assert df["served_dtype"].isna().all()
    assert store.cell_record(cell()).state is CellState.DONE


def test_recovery_rolls_forward_or_discards(tmp_path: Path) -> None:
    """Simulate the two crash windows of the commit protocol by leaving staging files behind."""
    store = ResultsStore.open_for_writing(tmp_path)
    c = cell()
    r1 = run()
    store.commit_cell(c, r1, scores(), samples(2))
    # window 1: killed after staging samples, before the commit point -> debris, discarded
    debris = tmp_path / "samples" / "_pending" / f"{c.key}__{new_run_id()}.parquet"
    debris.write_bytes((tmp_path / "samples" / f"{c.key}.parquet").read_bytes())
    # window 2: killed after the commit point, before samples were moved -> rolled forward
    other = cell("bench_b")
    r2 = run()
    store.commit_cell(other, r2, scores(), samples(3))
    final = tmp_path / "samples" / f"{other.key}.parquet"
    os.replace(final, tmp_path / "samples" / "_pending" / f"{other.key}__{r2.run_id}.parquet")
    reopened = ResultsStore.open_for_writing(tmp_path)
    assert not debris.exists()
    assert final.exists()
    smp = reopened.read_samples()
    assert set(smp[smp.benchmark == "bench_b"].run_id) == {r2.run_id}


KILLER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timezone
    from evalkit.core.cell import Cell
    from evalkit.core.records import SampleRecord, TaskScore
    from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id
    store = ResultsStore.open_for_writing(sys.argv[1])
    prov = Provenance("0", "0", "0", "0", "/c", "h")
    i = 0
    print("ready", flush=True)
    while True:  # commit the same cell over and over until killed
        now = datetime.now(timezone.utc)
        cell = Cell("m", "bf16", "b", "s", "hub:x", "f" * 64)
        scores = [TaskScore(f"t{j}", "acc", float(i), None, 1, is_primary=True) for j in range(50)]
        samples = [SampleRecord(f"t{j % 50}", j, "h", "a", "b", {"acc": float(i)}) for j in range(3000)]
        store.commit_cell(cell, RunInfo(new_run_id(), now, now, "log", prov), scores, samples)
        i += 1
    """
)


def test_kill_minus_9_mid_commit_leaves_whole_cell(tmp_path: Path) -> None:
    """A real process committing in a loop, killed with SIGKILL at varied moments: after each kill the store holds
    one complete, self-consistent cell (scores and samples of the same run)."""
    for attempt in range(6):
        with subprocess.Popen([sys.executable, "-c", KILLER, str(tmp_path)], stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            time.sleep(0.3 + 0.17 * attempt)
            proc.send_signal(signal.SIGKILL)
        # leaving `with` waited for the process and closed its pipe (a ResourceWarning, an error under pytest's filter)
        store = ResultsStore.open_for_writing(tmp_path)
        sc, smp = store.read_scores(), store.read_samples()
        if sc.empty:
            assert smp.empty
            continue
        assert len(sc) == 50 and sc["run_id"].nunique() == 1
        assert len(smp) == 3000 and set(smp["run_id"]) == set(sc["run_id"])
        assert sc["value"].nunique() == 1 and {v for m in smp["metrics"] for _, v in m} == set(sc["value"])
        assert not list((tmp_path / "scores" / "_pending").iterdir())
        assert not list((tmp_path / "samples" / "_pending").iterdir())
