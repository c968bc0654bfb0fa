"""Suites whose primary score is not the mean of one per-document metric, and the per-document values and weights
that make them comparable all the same (pure). documents.py reads every other suite off the two tables; each of
these is one `Special`: the primary row it stands for, the samples tasks that are its documents, and how their
values and weights come out of the samples' `metrics` map.

- RULER (`ruler` / `score`): the mean over lengths of the mean over tasks of each task x length cell's mean
  (evalkit.benchmarks.lm_eval.ruler_scores). A document's own-length score weighted
  1 / (lengths x tasks at its length x documents in its cell) reproduces it exactly; the cells are the clusters.
- Arena-Hard (`arena_hard` / `win_rate`): a Bradley-Terry fit over every battle, which no weighted sum of
  per-question values reproduces. The comparison stands in the mean per-question win fraction (the model's share of
  that question's weighted battles), on the same 0-100 scale, and its rows say so (`measure`). A question whose
  judgments all failed has no win fraction: it stays in the frame as NaN so that pairing leaves it out of both sides
  (pairing.drop_unscored) instead of refusing the pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.benchmarks.arena.names import TASK as ARENA_TASK
from evalkit.benchmarks.arena.names import WIN_FRACTION, WIN_RATE
from evalkit.benchmarks.lm_eval.names import NO_SAMPLE, RULER_GROUP, RULER_TASKS, SCORE, length_metric, length_of
from evalkit.compare.frame import MetricMap

Documents = Callable[[pd.DataFrame, MetricMap], pd.DataFrame]
"""(the member documents: samples columns model, format, benchmark, task, doc_id, prompt_hash, mc and `row`, their
row in the samples table; the metrics) -> the documents.py frame: `task` replaced by `cluster`, plus raw, y, w,
slope. One row per document value, weights summing to 1 per (model, format)."""


@dataclass(frozen=True)
class Special:
    task: str
    """The primary row's task, which the comparison's task rows are named after."""
    metric: str
    members: frozenset[str]
    """The samples tasks whose documents make the score."""
    measure: str | None
    """What the comparison measures where it is not the primary row's value (the comparisons table's `measure`);
    None where the weighted documents reproduce the primary row."""
    continuous: bool
    """The per-document value is a share: the permutation test, even where every value happens to be 0 or 1."""
    documents: Documents
    note: str | None = None
    """Said with every comparison of the suite (why its numbers differ from the scores table's)."""


def _cells(d: pd.DataFrame) -> np.ndarray:
    """Integer code of each document's (model, format) cell."""
    return d.groupby(["model", "format"], observed=True, sort=False).ngroup().to_numpy()


def _arena(d: pd.DataFrame, metrics: MetricMap) -> pd.DataFrame:
    raw = metrics.values(WIN_FRACTION)[d["row"].to_numpy()] * 100  # 0-1 share -> the table's percent
    n = np.bincount(cell := _cells(d))[cell]
    # mc False: an answer that happens to start with "{" is text, not choice log-likelihoods
    return d.rename(columns={"task": "cluster"}).assign(raw=raw, y=raw, w=1.0 / n, slope=1.0, mc=False)


def _ruler(d: pd.DataFrame, metrics: MetricMap) -> pd.DataFrame:
    lengths = sorted(n for k in metrics.keys if (n := length_of(k)) is not None)
    if not lengths:
        return d.iloc[:0]  # no per-document scores: documents.py says so
    rows = d["row"].to_numpy()
    pos, length_idx, raw = [], [], []
    for i, length in enumerate(lengths):  # a loop over lengths (a handful), not documents
        v = metrics.values(length_metric(length))[rows]
        # a document scores at its own length; lm-eval's -1 marks the others (ruler_sample drops them, older stores
        # may not)
        hit = np.flatnonzero(~np.isnan(v) & (v != NO_SAMPLE))
        pos.append(hit)
        length_idx.append(np.full(len(hit), i))
        raw.append(v[hit] * 100)
    out = d.iloc[np.concatenate(pos)].reset_index(drop=True)
    li = np.concatenate(length_idx)
    task = out.pop("task")
    task_code = task.cat.codes.to_numpy().astype(np.int64)
    n_len, n_task = len(lengths), len(task.cat.categories)
    cell_length = _cells(out).astype(np.int64) * n_len + li
    # w = 1 / (lengths of the cell x tasks at the length x documents in the task x length cell): ruler_scores' mean
    # over lengths of the mean over tasks of each cell's mean
    u3, inv3 = np.unique(cell_length * n_task + task_code, return_inverse=True)
    u2, inv2 = np.unique(u3 // n_task, return_inverse=True)
    n_lengths = np.bincount(u2 // n_len)[u2 // n_len]
    w = (1.0 / (n_lengths[inv2] * np.bincount(inv2)[inv2] * np.bincount(inv3)))[inv3]
    cluster_code, cluster_ids = pd.factorize(task_code * n_len + li)
    labels = [f"{task.cat.categories[c // n_len]}@{lengths[c % n_len]}" for c in cluster_ids]
    y = np.concatenate(raw)
    return out.assign(
        cluster=pd.Categorical.from_codes(cluster_code, categories=pd.Index(labels)),
        raw=y,
        y=y,
        w=w,
        slope=1.0,
        mc=False,
    )


ARENA = Special(
    ARENA_TASK,
    WIN_RATE,
    frozenset({ARENA_TASK}),
    measure=f"mean {WIN_FRACTION}",
    continuous=True,
    documents=_arena,
    note=f"compared on the mean per-question {WIN_FRACTION} (x100; column `measure`), not the scores table's "
    f"Bradley-Terry {WIN_RATE}: the two differ",
)
RULER = Special(RULER_GROUP, SCORE, frozenset(RULER_TASKS), measure=None, continuous=False, documents=_ruler)
SPECIALS = {(s.task, s.metric): s for s in (ARENA, RULER)}
"""By the (task, metric) of the primary row they stand for."""
