"""What a sweep's adaptive cells will spend, before they run (`evalkit sweep [--dry-run]`): per cell and for the
sweep, the maximum (every document of the baseline) and the expected documents, with the baseline's measured time
as the cost of a full run.

Expected: the rule replayed (compare/replay.py) over random orders of the baseline's committed documents, with the
variant assumed to disagree with the baseline on DISAGREEMENT of them at no net difference: a format that barely
moves (FP8-like, bench/sequential.md). A format that moves more stops later, or runs to the end: the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalkit.core.cell import CellKey
from evalkit.pipeline.adaptive import AdaptiveSettings, ChunkPlan, adaptive_settings, plan_chunks, suite_documents
from evalkit.pipeline.adaptive_run import read_baseline
from evalkit.pipeline.plan import JobPlan, results_dir
from evalkit.results.store import ResultsStore

DISAGREEMENT = 0.02
ORDERS = 50


@dataclass(frozen=True)
class Estimate:
    key: CellKey
    total: int | None
    """Documents of the full run; None while the baseline's cell is not committed."""
    expected: float | None
    seconds_full: float | None


def estimates(plans: Sequence[JobPlan]) -> list[Estimate]:
    """An estimate for every pending adaptive cell of the plans."""
    from evalkit.core.errors import EvalkitError

    out = []
    for plan in plans:
        cfg = plan.cfg
        for cell in plan.pending:
            settings = adaptive_settings(cfg, cell.benchmark, cell.format)
            if settings is None:
                continue
            try:
                base = read_baseline(ResultsStore(results_dir(cfg)), cell, cfg.baseline_format)
            except EvalkitError:
                out.append(Estimate(cell.key, None, None, None))
                continue
            docs, _ = suite_documents(base.scores, base.samples, cfg.baseline_format, cell.format)
            chunks = plan_chunks(docs, settings)
            out.append(Estimate(cell.key, chunks.total, _expected(chunks, settings), base.seconds))
    return out


def _expected(chunks: ChunkPlan, settings: AdaptiveSettings) -> float:
    """Mean documents the rule runs over ORDERS random orders, on synthetic differences: +-the stratum's bound on
    DISAGREEMENT of the documents (a flip either way), 0 elsewhere."""
    from evalkit.compare.replay import Cell, ReplaySettings, replay_cell

    rng = np.random.default_rng(settings.seed)
    codes = chunks.stratum
    flip = rng.random(len(codes)) < DISAGREEMENT
    sign = np.where(rng.random(len(codes)) < 0.5, -1.0, 1.0)
    diff = np.where(flip, sign * chunks.strata.bound[codes], 0.0)
    cell = Cell("", "", "", codes, diff, chunks.strata, settings.margin_points, "recovered")
    runs = replay_cell(
        cell, ReplaySettings(orders=ORDERS, chunk=settings.chunk, seed=settings.seed, rule=settings.rule)
    )
    return float(np.mean([r.n_seen for r in runs]))


def render_estimates(plans: Sequence[JobPlan]) -> str:
    """Lines for the plan printout ("" when no pending cell is adaptive)."""
    found = estimates(plans)
    if not found:
        return ""
    lines = []
    for e in found:
        if e.total is None or e.expected is None:
            lines.append(f"adaptive {e.key}: up to every document of its baseline (not committed yet: it runs first)")
            continue
        lines.append(
            f"adaptive {e.key}: at most {e.total:,} documents (~{e.seconds_full or 0:.0f}s, the baseline's time), "
            f"expected ~{e.expected:,.0f} ({100 * e.expected / e.total:.0f}%) if it disagrees with the baseline on "
            f"{100 * DISAGREEMENT:.0f}% of documents at no net change"
        )
    known = [e for e in found if e.total is not None and e.expected is not None]
    if known:
        total = sum(e.total or 0 for e in known)
        expected = sum(e.expected or 0.0 for e in known)
        lines.append(
            f"adaptive cells of the sweep: at most {total:,} documents, expected ~{expected:,.0f} "
            f"({100 * expected / max(total, 1):.0f}%)"
            + (f"; {len(found) - len(known)} more after their baselines" if len(found) > len(known) else "")
        )
    return "\n".join(lines)
