"""What adaptive evaluation would have spent and decided on a finished full run (pure): the sequential rule
(sequential.py) replayed over random orders of each variant's documents, against the full-data verdict of
`evalkit compare`. `evalkit replay` prints it; bench/sequential.py measures the rule with it.

A cell here is one (model, format, suite) comparison: its paired per-document differences on the suite's scale
(documents.py, pairing.py: the same frame `evalkit compare` bootstraps), grouped into strata of equal weight and
bound, and the verdict compare gave it on every document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from evalkit.compare.documents import document_scores
from evalkit.compare.floor import is_replicate
from evalkit.compare.frame import as_table
from evalkit.compare.pairing import drop_unscored, pair
from evalkit.compare.sequential import (
    Decision,
    RuleSettings,
    Strata,
    confidence_sequence,
    document_order,
    first_stop,
    looks_every,
)
from evalkit.compare.table import PAIR_COLUMNS, SUITE, VARIANT, CompareSettings, compare
from evalkit.compare.verdict import Margin, Verdict

CONCLUSIVE = {
    Decision.RECOVERED.value: Verdict.RECOVERED.value,
    Decision.WITHIN_MARGIN.value: Verdict.WITHIN_MARGIN.value,
    Decision.DEGRADED.value: Verdict.DEGRADED.value,
}
"""A stopped rule's decision -> the verdict label of `evalkit compare` it claims."""


def same_claim(label: str, full_verdict: str) -> bool:
    """The reported label makes the claim the full-data verdict makes: the same label, or both non-inferior (recovered
    and within margin differ only in whether a drop inside the margin was detected, which more documents can show)."""
    if label == full_verdict:
        return True
    known = {v.value for v in Verdict}
    return (
        label in known and full_verdict in known and Verdict(label).non_inferior and Verdict(full_verdict).non_inferior
    )


@dataclass(frozen=True)
class Cell:
    """One comparison, ready for the rule."""

    model: str
    format: str
    suite: str
    stratum: np.ndarray
    """Stratum code of each document (index into `strata`)."""
    diff: np.ndarray
    """variant - baseline per document, in points of the suite's scale."""
    strata: Strata
    margin_points: float
    full_verdict: str
    """`evalkit compare`'s verdict on every document."""


@dataclass(frozen=True)
class ReplaySettings:
    orders: int = 200
    chunk: int | None = None
    """Documents per chunk; None: 2% of the cell's documents, at least one per stratum."""
    seed: int = 0
    rule: RuleSettings = field(default_factory=RuleSettings)


def strata_of(paired: pd.DataFrame) -> tuple[np.ndarray, Strata]:
    """Strata of a suite's paired documents: documents of equal weight in the suite and equal bound (a task, or a
    subtask where the task is the mean of its subtasks). A document's suite weight is its weight in its task over
    the suite's number of tasks; its bound is 100 points x the v2 normalisation's slope."""
    n_tasks = paired["task"].nunique()
    w = paired["w_b"].to_numpy(dtype=float) / n_tasks
    bound = 100.0 * np.maximum(paired["slope_b"].to_numpy(dtype=float), 1.0)
    key = pd.MultiIndex.from_arrays([np.round(w, 15), np.round(bound, 9)])
    code, uniques = pd.factorize(key)
    sizes = np.bincount(code)
    w_doc = np.array([u[0] for u in uniques])
    return code, Strata(sizes, w_doc * sizes, np.array([u[1] for u in uniques]))


def cells(
    samples: pa.Table | pd.DataFrame, scores: pd.DataFrame, settings: CompareSettings
) -> tuple[list[Cell], list[str]]:
    """Every variant comparison of the results with its full-data verdict (replicates left out: they are the
    baseline against itself)."""
    table, notes = compare(samples, scores, settings)
    suite_rows = table[(table["task"] == SUITE) & (table["role"] == VARIANT)]
    verdicts = {
        (str(r["model"]), str(r["format"]), str(r["suite"])): (float(r["margin_points"]), str(r["verdict"]))
        for r in suite_rows.to_dict("records")
    }
    docs, _ = document_scores(as_table(samples), scores)
    out: list[Cell] = []
    for (model, suite), grp in docs.groupby(["model", "suite"], sort=True, observed=True):
        base = grp[grp["format"] == settings.baseline]
        for fmt, var in grp[grp["format"] != settings.baseline].groupby("format", sort=True, observed=True):
            key = (str(model), str(fmt), str(suite))
            if base.empty or is_replicate(str(fmt), settings.baseline) or key not in verdicts:
                continue
            paired, _ = drop_unscored(pair(base[PAIR_COLUMNS], var[PAIR_COLUMNS], " / ".join(key)))
            stratum, strata = strata_of(paired)
            diff = paired["y_v"].to_numpy(dtype=float) - paired["y_b"].to_numpy(dtype=float)
            out.append(Cell(*key, stratum, diff, strata, *verdicts[key]))
    return out, notes


@dataclass(frozen=True)
class Replay:
    """The rule on one order of one cell."""

    order: int
    n_seen: int
    fraction: float
    decision: str
    """The rule's decision ("continue": it never stopped before the last document)."""
    label: str
    """What adaptive mode reports: the decision where it stopped early, else the full-data verdict."""
    agrees: bool
    lower: float
    upper: float


def chunk_size(cell: Cell, settings: ReplaySettings) -> int:
    if settings.chunk is not None:
        return settings.chunk
    return max(len(cell.strata.sizes), int(np.ceil(0.02 * len(cell.diff))))


def replay_cell(cell: Cell, settings: ReplaySettings) -> list[Replay]:
    n = len(cell.diff)
    looks = looks_every(n, chunk_size(cell, settings))
    out = []
    for i in range(settings.orders):
        o = document_order(cell.stratum, settings.seed + i, cell.strata.rate)
        cs = confidence_sequence(cell.stratum[o], cell.diff[o], cell.strata, looks, cell.margin_points, settings.rule)
        stop = first_stop(cs, cell.margin_points)
        early = stop.decision.stops
        label = CONCLUSIVE[stop.decision.value] if early else cell.full_verdict
        out.append(
            Replay(
                i,
                stop.n_seen if early else n,
                (stop.n_seen if early else n) / n,
                stop.decision.value,
                label,
                same_claim(label, cell.full_verdict),
                stop.lower,
                stop.upper,
            )
        )
    return out


def replay(
    cell_list: list[Cell], settings: ReplaySettings, progress: Callable[[Cell], None] | None = None
) -> pd.DataFrame:
    """One row per cell: documents, the full-data verdict, and over the orders: mean fraction of documents used,
    share stopped early, each decision's share, agreement with the full-data verdict."""
    rows = []
    for cell in cell_list:
        if progress is not None:
            progress(cell)
        runs = pd.DataFrame([asdict(r) for r in replay_cell(cell, settings)])
        rows.append(summarise(cell, runs))
    return pd.DataFrame(rows)


def summarise(cell: Cell, runs: pd.DataFrame) -> dict[str, object]:
    decisions = runs["decision"].value_counts(normalize=True)
    return {
        "model": cell.model,
        "format": cell.format,
        "suite": cell.suite,
        "n_docs": len(cell.diff),
        "diff": float(cell.diff @ (cell.strata.weight / cell.strata.sizes)[cell.stratum]),
        "margin_points": cell.margin_points,
        "full_verdict": cell.full_verdict,
        "orders": len(runs),
        "mean_fraction": float(runs["fraction"].mean()),
        "stopped_early": float((runs["decision"] != Decision.CONTINUE.value).mean()),
        **{f"share_{d.value}": float(decisions.get(d.value, 0.0)) for d in Decision},
        "agreement": float(runs["agrees"].mean()),
    }


def render(table: pd.DataFrame, settings: ReplaySettings, margin: Margin) -> str:
    head = (
        f"{'model':<24} {'suite':<18} {'format':<8} {'n':>6} {'diff':>7} {'full-data':>12} "
        f"{'docs used':>9} {'early':>6} {'rec':>5} {'deg':>5} {'agree':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in table.to_dict("records"):
        rec = r["share_recovered"] + r["share_within-margin"]
        lines.append(
            f"{str(r['model'])[:24]:<24} {str(r['suite'])[:18]:<18} {str(r['format'])[:8]:<8} {r['n_docs']:>6} "
            f"{r['diff']:>+7.2f} {r['full_verdict']!s:>12} {100 * r['mean_fraction']:>8.0f}% "
            f"{100 * r['stopped_early']:>5.0f}% {100 * rec:>4.0f}% {100 * r['share_degraded']:>4.0f}% "
            f"{100 * r['agreement']:>5.0f}%"
        )
    target = "documents' own difference" if settings.rule.finite else "population difference (as compare)"
    lines.append(
        f"\n{settings.orders} random orders per cell; margin {margin}; a look every "
        f"{settings.chunk or '2% of the'} documents; alpha {settings.rule.alpha} (two-sided), inferring the "
        f"{target}. docs used: mean share of the variant's documents run; early: share of orders stopped before the "
        "last document; rec / deg: share stopped recovered / degraded; agree: the reported verdict equals "
        "`evalkit compare`'s on every document."
    )
    return "\n".join(lines)
