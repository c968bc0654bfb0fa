"""Adaptive evaluation of a variant format (pure): which documents its next chunk runs, and whether the sequential
rule (evalkit/compare/sequential.py) lets it stop, from what is committed so far.

The baseline runs in full (every variant shares it). Its committed documents fix everything the variant's chunks
need, before any variant score exists: the strata (documents of equal weight in the suite, documents.py), the seeded
order (sequential.document_order, strata at the pace of their worth), and so the chunks, each a mapping
`{lm-eval task: [doc ids]}` for lm-eval's `--samples` (same prompts as a full run). Nothing here keeps state: the
next chunk and the decision are recomputed from the committed samples, so a job killed between chunks resumes at
the first chunk whose documents are not committed, and the decision after a chunk is the same whenever it is made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalkit.compare.pairing import drop_unscored, pair
from evalkit.compare.replay import strata_of
from evalkit.compare.sequential import Decision, RuleSettings, Strata, confidence_sequence, decide, document_order
from evalkit.compare.table import PAIR_COLUMNS
from evalkit.core.config import EvalkitConfig, replicate_of
from evalkit.core.records import SampleRecord, TaskScore


@dataclass(frozen=True)
class AdaptiveSettings:
    """Settings of adaptive mode for one suite (opt-in)."""

    chunk: int = 200
    """Variant documents per chunk: one `lm-eval --samples` run, one commit, one look of the rule."""
    margin_points: float = 1.0
    alpha: float = 0.05
    population: bool = True
    """Infer the difference of the population the documents are drawn from (as `evalkit compare`), not of the
    documents themselves."""
    seed: int = 0
    """Seed of the document order (the same for every variant of a suite, so their chunks hold the same documents)."""

    @property
    def rule(self) -> RuleSettings:
        return RuleSettings(alpha=self.alpha, finite=not self.population)


@dataclass(frozen=True)
class ChunkPlan:
    """A suite's documents in the order a variant runs them, cut into chunks."""

    task: np.ndarray
    """lm-eval task (the samples' task) of each document, in order."""
    doc_id: np.ndarray
    stratum: np.ndarray
    strata: Strata
    chunk: int
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", len(self.doc_id))

    @property
    def ends(self) -> np.ndarray:
        """Documents run after each chunk."""
        return np.unique(np.append(np.arange(self.chunk, self.total, self.chunk), self.total))

    def chunk_samples(self, index: int) -> dict[str, list[int]]:
        """lm-eval's `--samples` of chunk `index`: {task: [doc ids]}."""
        start = 0 if index == 0 else int(self.ends[index - 1])
        end = int(self.ends[index])
        out: dict[str, list[int]] = {}
        for task, doc in zip(self.task[start:end], self.doc_id[start:end], strict=True):
            out.setdefault(str(task), []).append(int(doc))
        return {t: sorted(ids) for t, ids in sorted(out.items())}

    def keys(self, start: int, end: int) -> list[tuple[str, int]]:
        """(task, doc id) of the documents run in positions [start, end)."""
        return list(zip(map(str, self.task[start:end]), map(int, self.doc_id[start:end]), strict=True))

    def chunks_done(self, committed: Iterable[tuple[str, int]]) -> int:
        """How many chunks, from the first, have every document committed (a job resumes at the next one)."""
        done = set(committed)
        start = 0
        for i, end in enumerate(self.ends):
            if not all(k in done for k in self.keys(start, int(end))):
                return i
            start = int(end)
        return len(self.ends)


def plan_chunks(baseline_docs: pd.DataFrame, settings: AdaptiveSettings) -> ChunkPlan:
    """The chunk plan of one suite from its baseline documents (documents.py's frame for the baseline's cell:
    task, cluster, doc_id, w, slope)."""
    frame = baseline_docs.rename(columns={"w": "w_b", "slope": "slope_b"})
    stratum, strata = strata_of(frame)
    order = document_order(stratum, settings.seed, strata.rate)
    return ChunkPlan(
        baseline_docs["cluster"].astype(str).to_numpy()[order],
        baseline_docs["doc_id"].to_numpy()[order],
        stratum[order],
        strata,
        settings.chunk,
    )


@dataclass(frozen=True)
class AdaptiveStatus:
    """Where a variant's adaptive cell stands after its committed chunks."""

    decision: Decision
    """CONTINUE while the rule has not decided (and documents remain)."""
    chunks_done: int
    documents: int
    """Variant documents run so far."""
    total: int
    lower: float
    upper: float
    complete: bool
    """Every document was run: the full-data verdict (`evalkit compare`) applies."""

    @property
    def stopped_early(self) -> bool:
        return self.decision.stops and not self.complete

    @property
    def why(self) -> str:
        spent = f"{self.documents:,} of {self.total:,} documents ({100 * self.documents / self.total:.0f}%)"
        cs = f"anytime-valid CS of the difference [{self.lower:+.2f}, {self.upper:+.2f}]"
        if self.stopped_early:
            return f"stopped early after {spent}: {self.decision.value} ({cs})"
        if self.complete:
            return f"ran all {self.total:,} documents: the full-data verdict applies ({cs})"
        return f"continues after {spent} ({cs})"


def status(
    plan: ChunkPlan, baseline_docs: pd.DataFrame, variant_docs: pd.DataFrame, settings: AdaptiveSettings
) -> AdaptiveStatus:
    """The rule on the variant's committed documents (documents.py's frame for the variant's cell), looked at after
    each whole chunk, in the plan's order. A document of the variant outside the plan, or a chunk committed in part,
    is an error of the caller (chunks commit whole)."""
    chunks_done = plan.chunks_done(_keys(variant_docs))
    n_done = int(plan.ends[chunks_done - 1]) if chunks_done else 0
    if n_done == 0:
        return AdaptiveStatus(Decision.CONTINUE, 0, 0, plan.total, -np.inf, np.inf, False)
    # the baseline's documents the variant has run so far: pairing then checks prompts match, as compare does
    keys = plan.keys(0, n_done)
    run = set(keys)
    base = baseline_docs.loc[[k in run for k in _keys(baseline_docs)], PAIR_COLUMNS]
    var = variant_docs.loc[[k in run for k in _keys(variant_docs)], PAIR_COLUMNS]
    paired, _ = drop_unscored(pair(base, var, "adaptive variant vs baseline"))
    diff_of = dict(
        zip(
            zip(paired["cluster"].astype(str), paired["doc_id"].astype(int), strict=True),
            paired["y_v"].to_numpy(float) - paired["y_b"].to_numpy(float),
            strict=True,
        )
    )
    # a document one side could not score (an Arena-Hard question whose judgments all failed) counts as no change
    diff = np.array([diff_of.get(k, 0.0) for k in keys])
    looks = plan.ends[:chunks_done]
    cs = confidence_sequence(plan.stratum[:n_done], diff, plan.strata, looks, settings.margin_points, settings.rule)
    complete = n_done == plan.total
    decision = Decision.CONTINUE
    for j in range(len(looks) - (1 if complete else 0)):
        decision = decide(float(cs.lower[j]), float(cs.upper[j]), settings.margin_points)
        if decision.stops:
            break
    return AdaptiveStatus(decision, chunks_done, n_done, plan.total, float(cs.lower[-1]), float(cs.upper[-1]), complete)


def _keys(docs: pd.DataFrame) -> list[tuple[str, int]]:
    return list(zip(docs["cluster"].astype(str), docs["doc_id"].astype(int), strict=True))


def adaptive_settings(cfg: EvalkitConfig, benchmark: str, fmt: str) -> AdaptiveSettings | None:
    """The adaptive settings of one cell of the job; None when it runs every document: adaptive mode off for its
    suite (`benchmarks.<name>.adaptive`, else the sweep's `adaptive`), or the cell is the baseline's (or one of its
    replicates: they measure the baseline against itself, in full)."""
    conf = cfg.benchmarks[benchmark].adaptive or cfg.adaptive
    if not conf.enabled or fmt == cfg.baseline_format or replicate_of(fmt) is not None:
        return None
    return AdaptiveSettings(chunk=conf.chunk, margin_points=conf.margin, alpha=conf.alpha, seed=conf.seed)


def merge_scores(parts: Sequence[Sequence[TaskScore]]) -> list[TaskScore]:
    """One set of task scores over the documents of several chunks: each (task, metric, filter) the mean of the
    chunks' values weighted by their documents, standard errors combined as those of a mean over the union. Exact
    for the mean-aggregated metrics lm-eval reports per task (accuracy, exact match); a metric lm-eval aggregates
    otherwise (corpus BLEU, F1 over a set) would be approximated, and the suites adaptive mode serves have none."""
    acc: dict[tuple[str, str, str], list[TaskScore]] = defaultdict(list)
    for part in parts:
        for s in part:
            acc[(s.task, s.metric, s.filter)].append(s)
    out = []
    for rows in acc.values():
        n = np.array([max(r.n_samples, 0) for r in rows], dtype=float)
        total = float(n.sum())
        w = n / total if total else np.full(len(rows), 1 / len(rows))

        def mean(values: list[float | None], w: np.ndarray = w) -> float | None:
            return None if any(v is None for v in values) else float(np.dot(w, np.asarray(values, dtype=float)))

        se = [r.stderr for r in rows]
        stderr = None if any(v is None for v in se) else float(np.sqrt(np.sum((w * np.asarray(se, float)) ** 2)))
        first = rows[0]
        out.append(
            TaskScore(
                task=first.task,
                metric=first.metric,
                value=mean([r.value for r in rows]),
                stderr=stderr,
                n_samples=int(total),
                filter=first.filter,
                higher_is_better=first.higher_is_better,
                normalized=mean([r.normalized for r in rows]),
                is_primary=first.is_primary,
            )
        )
    return out


def committed_results(scores: pd.DataFrame, samples: pd.DataFrame) -> tuple[list[TaskScore], list[SampleRecord]]:
    """A committed cell's rows back as the records an adapter returns (to merge the next chunk into)."""
    ok = scores[scores["status"] == "ok"]
    task_scores = [
        TaskScore(
            task=str(r["task"]),
            metric=str(r["metric"]),
            value=_number(r["value"]),
            stderr=_number(r["stderr"]),
            n_samples=int(r["n_samples"]),
            filter=str(r["filter"]),
            higher_is_better=bool(r["higher_is_better"]),
            normalized=_number(r["normalized"]),
            is_primary=bool(r["is_primary"]),
        )
        for r in ok.to_dict("records")
    ]
    records = [
        SampleRecord(
            task=str(r["task"]),
            doc_id=int(r["doc_id"]),
            prompt_hash=str(r["prompt_hash"]),
            target=str(r["target"]),
            response=str(r["response"]),
            metrics={str(k): float(v) for k, v in (r["metrics"] or [])},
        )
        for r in samples.to_dict("records")
    ]
    return task_scores, records


def _number(v: float | None) -> float | None:
    return None if v is None or np.isnan(v) else float(v)


def suite_documents(
    scores: pd.DataFrame, samples: pd.DataFrame, baseline: str, variant: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline's and the variant's documents of one suite (documents.py's frame, as `evalkit compare` builds
    it) from both cells' rows. The variant may have none yet (an empty frame)."""
    from evalkit.compare.documents import document_scores
    from evalkit.compare.frame import as_table

    docs, _ = document_scores(as_table(samples), scores)
    fmt = docs["format"].astype(str)
    return docs[fmt == baseline].reset_index(drop=True), docs[fmt == variant].reset_index(drop=True)
