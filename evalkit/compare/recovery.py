"""`evalkit aggregate`: the recovery tables (evalkit.results.aggregate) with each recovery's 95% CI and verdict from
the comparisons (table.py), so the two commands can never disagree on a verdict: there is one implementation.

The recovery itself stays the table's (the study's ratio of averages of the scores table); the CI and verdict come
from the per-document comparison of the same cells. Where the two averages differ (README, "Comparing formats": a
v2 subtask below chance is floored only in the table) the CI is still the comparison's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit.benchmarks import report_sections
from evalkit.compare.frame import read_samples
from evalkit.compare.table import REPLICATE, SUITE, CompareSettings, compare, verdict_of
from evalkit.core.errors import CompareError, StoreError
from evalkit.results.aggregate import REQUIRED_COLUMNS, TASK_SUITES, recovery_table, render_recovery, write_recovery
from evalkit.results.store import ResultsStore

SPLIT_LINES = {line: key for key, line in TASK_SUITES.items()}
"""Table line -> (cell suite, task) of a task with a line of its own (HumanEval+ beside HumanEval)."""
SPLIT_SUITES = {suite for suite, _ in TASK_SUITES}


def _source_row(comparisons: pd.DataFrame, model: str, fmt: str, line: str) -> pd.Series | None:
    """The comparisons row behind a table line: the suite row, or the task row where a cell's tasks are split into
    lines of their own (a HumanEval cell: lines humaneval and humaneval_plus)."""
    suite, task = SPLIT_LINES.get(line, (line, line if line in SPLIT_SUITES else SUITE))
    hit = comparisons[
        (comparisons["model"] == model)
        & (comparisons["format"] == fmt)
        & (comparisons["suite"] == suite)
        & (comparisons["task"] == task)
    ]
    return hit.iloc[0] if len(hit) else None


def with_verdicts(recovery: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """The recovery table with recovery_lo / recovery_hi / verdict filled from `comparisons` (`compare`'s table)
    where a comparison exists; baseline replicates get their CI, and no verdict (they are the noise floor)."""
    out = recovery.copy()
    for i, r in out.iterrows():
        src = _source_row(comparisons, str(r["model"]), str(r["format"]), str(r["suite"]))
        if src is None:
            continue
        verdict = None if src["role"] == REPLICATE else verdict_of(src.to_dict())
        measure = src.get("measure")
        if isinstance(measure, str):
            # compared on another quantity than the table's score (Arena-Hard: mean win fraction, not the BT win
            # rate): its CI would not bracket this recovery, so only the verdict is shown, saying what it is of
            out.at[i, "verdict"] = None if verdict is None else f"{verdict} (on {measure})"
            continue
        part = src.get("tasks_compared")
        if isinstance(part, str) and part.split("/")[0] != part.split("/")[1]:
            # samples for some of the suite's tasks only: their interval is not this line's recovery's
            out.at[i, "verdict"] = f"no CI (samples for {part} tasks)" if verdict is not None else None
            continue
        out.at[i, "recovery_lo"] = float(src["recovery_lo"])
        out.at[i, "recovery_hi"] = float(src["recovery_hi"])
        out.at[i, "verdict"] = verdict
    return out


def aggregate_results(results: Path, baseline_format: str = "bf16") -> str:
    """Read `<results>/scores` (and `samples`), write `<results>/aggregate/recovery.{parquet,csv}` and return the text
    report: what `evalkit aggregate` prints, and the Slurm aggregate job's log. Without per-document samples (a
    hand-entered scores table) the recoveries stand alone, and the report says why."""
    store = ResultsStore(results)
    scores = store.read_scores(required=REQUIRED_COLUMNS)
    table = recovery_table(scores, baseline_format, report_sections())
    note = ""
    if (table["format"] != baseline_format).any():
        try:
            # hand-entered rows (the contract's 8 columns) beside sampled cells: each line keeps what it has
            comparisons, _ = compare(read_samples(results), scores, CompareSettings(baseline_format))
            table = with_verdicts(table, comparisons)
        except (CompareError, StoreError) as err:
            note = f"\n\nno CIs or verdicts: {err.message}"
    return f"{render_recovery(table, baseline_format)}{note}\n\n{write_recovery(table, results)}"
