"""RULER's score rows, from the per-document scores of all the suite's RULER runs (pure).

Every document lm-eval generates carries its target length, and each task scores a document under a metric named
after that length ("4096"), with -1 under lm-eval's default length when it is another one. Scores (percent; lm-eval
scores a document 0-1 by the share of expected strings found in the answer), computed over the documents of all the
suite's RULER runs (a suite may split tasks or lengths over runs):
- `<task>`, metric `score@<L>`: mean over the task's documents of length L (stderr over those documents);
- `<task>`, metric `score`: mean of the task's per-length scores;
- `ruler`, metric `score@<L>`: mean over the tasks at length L, unweighted (NVIDIA RULER's per-length column;
  lm-eval's `ruler` group averages the same way, weight_by_size: false, but only for 4096);
- `ruler`, metric `score` (primary): mean of the per-length scores, i.e. the unweighted mean over the task x length
  cells when every task ran at every length (NVIDIA RULER's "Avg."; the study reports one RULER score per model).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from evalkit.benchmarks.lm_eval.names import NO_SAMPLE, SCORE, length_metric, length_of
from evalkit.benchmarks.lm_eval.ruler import GROUP, TASKS
from evalkit.core.records import SampleRecord, TaskScore


def is_ruler(task: str) -> bool:
    return task in TASKS or task == GROUP


def ruler_samples(task: str, records: list[SampleRecord]) -> list[SampleRecord]:
    """A task's document records as the suite stores them: RULER's relabelled (`ruler_sample`), others unchanged."""
    return [ruler_sample(r) for r in records] if task in TASKS else records


def ruler_sample(record: SampleRecord) -> SampleRecord:
    """A RULER document's record with lm-eval's length metrics renamed ("4096" -> "score@4096", 0-1 scale) and
    the -1 placeholders of the lengths it does not belong to dropped."""
    metrics = {
        length_metric(int(name)): value
        for name, value in record.metrics.items()
        if name.isdigit() and value != NO_SAMPLE
    }
    return replace(record, metrics=metrics)


def ruler_scores(samples: Iterable[SampleRecord]) -> list[TaskScore]:
    """Per task x length, per task, per length and overall rows from the RULER documents among `samples` (see the
    module docstring); one set for the suite, whichever runs its tasks and lengths were split into.

    Computed from the per-document scores rather than lm-eval's results JSON, which aggregates lengths outside its
    fixed 4K-128K metric list with a plain mean, reports -1 for lengths without documents, gives no stderr for the
    standard lengths and aggregates the group only at 4096. A unit test checks both agree where lm-eval's is right.
    """
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for s in samples:
        if s.task not in TASKS:
            continue
        for name, value in s.metrics.items():
            length = length_of(name)
            if length is not None:
                cells[(s.task, length)].append(value)
    rows: list[TaskScore] = []
    per_task: dict[str, list[TaskScore]] = defaultdict(list)
    per_length: dict[int, list[TaskScore]] = defaultdict(list)
    for (task, length), values in sorted(cells.items()):
        row = TaskScore(
            task=task,
            metric=length_metric(length),
            value=_mean(values) * 100,
            stderr=_stderr(values),
            n_samples=len(values),
        )
        rows.append(row)
        per_task[task].append(row)
        per_length[length].append(row)
    rows += [_mean_row(task, SCORE, cells_) for task, cells_ in per_task.items()]
    length_rows = [_mean_row(GROUP, length_metric(n), cells_) for n, cells_ in sorted(per_length.items())]
    rows += length_rows
    if length_rows:
        rows.append(replace(_mean_row(GROUP, SCORE, length_rows), is_primary=True))
    return rows


def without_ruler(results: Mapping[str, object]) -> dict[str, object]:
    """lm-eval's results JSON minus the RULER tasks and group, whose rows `ruler_scores` makes instead."""
    out = dict(results)
    for key in ("results", "group_subtasks", "n-samples", "higher_is_better"):
        block = results.get(key)
        if isinstance(block, Mapping):
            out[key] = {k: v for k, v in block.items() if not is_ruler(str(k))}
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean in percent (sample standard deviation); None for a single document."""
    n = len(values)
    if n < 2:
        return None
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) * 100


def _mean_row(task: str, metric: str, parts: Sequence[TaskScore]) -> TaskScore:
    """Unweighted mean of `parts` (each a mean over its own documents); no stderr: the parts are not one sample."""
    values = [p.value for p in parts if p.value is not None]
    return TaskScore(
        task=task,
        metric=metric,
        value=_mean(values) if values else None,
        n_samples=sum(p.n_samples for p in parts),
    )
