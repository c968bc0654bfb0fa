"""Coverage and error rates of the decision procedure, on synthetic paired data through the project's own
functions (evalkit.compare.paired.paired / interval, evalkit.compare.verdict.decide).

Each scenario draws R replications of n documents whose (baseline, variant) outcomes come from the paired 2x2 table:
a share q of the documents disagree (the disagreement rate), right->wrong with probability (q - delta) / 2 and
wrong->right with (q + delta) / 2, so the true difference is delta (x100 points) whatever the weights. Structures:
- plain: one task;
- unequal subtasks: one task, the mean of 3 subtasks holding 10% / 30% / 60% of the documents (unequal weights);
- shared documents: two tasks scoring the same documents (HumanEval / HumanEval+), the second's outcome equal to the
  first's on 80% of the documents.
True difference in {0, -0.5, -1, -2} x margin (1 point). Coverage is of the 95% interval of the difference; verdict
rates are of one claim (the 95% interval, as for a family of one; a larger family only widens it).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from bench.figures import header, run_info, write
from evalkit.compare.paired import Documents, interval, paired
from evalkit.compare.verdict import Verdict, decide

MARGIN = 1.0
NS = (20, 50, 200, 1000, 10000)
DISAGREEMENT = (0.02, 0.15)
TRUE = (0.0, -0.5, -1.0, -2.0)
STRUCTURES = ("plain", "unequal subtasks", "shared documents")
BASE_RATE = 0.6


def _pairs(rng: np.random.Generator, n: int, q: float, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and variant right/wrong (0/100) of n documents from the paired 2x2 table."""
    p10 = (q - delta) / 2  # right -> wrong; u in [p10, q) is wrong -> right, probability (q + delta) / 2
    u = rng.random(n)
    y_b = np.where(u < p10, 1.0, np.where(u < q, 0.0, (rng.random(n) < BASE_RATE).astype(float)))
    y_v = np.where(u < p10, 0.0, np.where(u < q, 1.0, y_b))
    return y_b * 100, y_v * 100


def _documents(rng: np.random.Generator, structure: str, n: int, q: float, delta: float) -> Documents:
    y_b, y_v = _pairs(rng, n, q, delta)
    ones = np.ones(n, np.int64)
    if structure == "plain":
        return Documents(0 * ones, np.arange(n), 0 * ones, np.full(n, 1 / n), y_b, y_v, 100.0 * ones, np.array([1]))
    if structure == "unequal subtasks":
        sizes = np.maximum(np.round(np.array([0.1, 0.3, 0.6]) * n).astype(int), 1)
        sizes[-1] = n - sizes[:-1].sum()
        stratum = np.repeat(np.arange(3), sizes)
        weight = 1 / (3 * sizes[stratum])
        return Documents(0 * ones, np.arange(n), stratum, weight, y_b, y_v, 100.0 * ones, np.array([1]))
    # shared documents: a second task on the same documents, equal outcomes on 80% of them
    b2, v2 = _pairs(rng, n, q, delta)
    same = rng.random(n) < 0.8
    b2, v2 = np.where(same, y_b, b2), np.where(same, y_v, v2)
    return Documents(
        np.repeat([0, 1], n),
        np.tile(np.arange(n), 2),
        np.zeros(2 * n, np.int64),
        np.full(2 * n, 1 / n),
        np.concatenate([y_b, b2]),
        np.concatenate([y_v, v2]),
        np.full(2 * n, 100.0),
        np.array([1, 1]),
    )


def scenario(rng: np.random.Generator, structure: str, n: int, q: float, true: float, reps: int) -> dict[str, Any]:
    delta = true * MARGIN / 100
    covered = 0
    counts = dict.fromkeys((v.value for v in Verdict), 0)
    for _ in range(reps):
        r = paired(_documents(rng, structure, n, q, delta))
        lo, hi = interval(np.array(r.diff), np.array(r.se), np.array(r.df), 0.95, r.flip_worth, r.moved)
        covered += bool(lo <= true * MARGIN <= hi)
        counts[decide(float(lo), float(hi), MARGIN).value] += 1
    return {
        "structure": structure,
        "n": n,
        "disagreement": q,
        "true_diff_x_margin": true,
        "reps": reps,
        "coverage": covered / reps,
        **{k: v / reps for k, v in counts.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=300, help="replications per scenario (default 300)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    info = run_info("bench.coverage", argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    rows = [
        scenario(rng, s, n, q, t, args.reps)
        for s in STRUCTURES
        for n in NS
        for q in DISAGREEMENT
        for t in TRUE
        if abs(t * MARGIN) / 100 <= q  # the table needs |difference| <= disagreement
    ]
    seconds = time.perf_counter() - t0
    mc = float(np.sqrt(0.95 * 0.05 / args.reps))
    big = [r for r in rows if r["n"] >= 50]
    false_degraded = max(r["degraded"] for r in rows if r["true_diff_x_margin"] == -0.5)
    false_recovered = max(r["recovered"] + r["within margin"] for r in rows if r["true_diff_x_margin"] == -2.0)
    summary = {
        "coverage_min_n_ge_50": min(r["coverage"] for r in big),
        "coverage_max_n_ge_50": max(r["coverage"] for r in big),
        "coverage_min_n_20": min(r["coverage"] for r in rows if r["n"] == 20),
        "max_false_degraded_at_-0.5_margin": false_degraded,
        "max_false_recovered_at_-2_margin": false_recovered,
        "monte_carlo_se_of_a_95pct_coverage": mc,
        "seconds": seconds,
    }
    md = header("Coverage and error rates of `evalkit compare`'s decision procedure", info)
    md += [
        (__doc__ or "").strip(),
        "",
        f"{len(rows)} scenarios x {args.reps} replications in {seconds:.0f} s. Monte Carlo standard error of a "
        f"coverage near 95%: {100 * mc:.1f} points; of a rate near 5%: {100 * np.sqrt(0.05 * 0.95 / args.reps):.1f}.",
        "",
        f"- coverage of the 95% interval, n >= 50: {100 * summary['coverage_min_n_ge_50']:.1f}% to "
        f"{100 * summary['coverage_max_n_ge_50']:.1f}% (target 93-97%); n = 20: from "
        f"{100 * summary['coverage_min_n_20']:.1f}%",
        f"- false `degraded` at -0.5 x margin, worst scenario: {100 * false_degraded:.1f}% (target <= 5%)",
        f"- false `recovered` / `within margin` at -2 x margin, worst scenario: {100 * false_recovered:.1f}% "
        "(target <= 5%)",
        "",
        "| structure | n | disagreement | true diff (x margin) | coverage | recovered | within margin | inconclusive "
        "| degraded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['structure']} | {r['n']} | {100 * r['disagreement']:.0f}% | {r['true_diff_x_margin']:g} | "
        f"{100 * r['coverage']:.1f}% | {100 * r['recovered']:.1f}% | {100 * r['within margin']:.1f}% | "
        f"{100 * r['inconclusive']:.1f}% | {100 * r['degraded']:.1f}% |"
        for r in rows
    ]
    write("coverage", {**info, "summary": summary, "scenarios": rows}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
