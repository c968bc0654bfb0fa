"""Coverage and error rates of the decision procedure, on synthetic paired data through the project's own
functions (evalkit.compare.paired.paired / interval, evalkit.compare.verdict.decide).

Each scenario draws R replications of n documents whose (baseline, variant) outcomes come from the paired 2x2 table:
a share q of the documents disagree (the disagreement rate), right->wrong with probability (q - delta) / 2 and
wrong->right with (q + delta) / 2, so the true difference is delta (x100 points) whatever the weights. Structures:
- plain: one task;
- unequal subtasks: one task, the mean of 3 subtasks holding 10% / 30% / 60% of the documents (unequal weights);
- shared documents: two tasks scoring the same documents (HumanEval / HumanEval+), the second's outcome equal to the
  first's on 80% of the documents.
True difference in {0, -0.5, -1, -2} x margin (1 point); at -2 x margin and 2% disagreement every disagreement is a
drop. Coverage is of the 95% interval of the difference; verdict rates are of one claim (the 95% interval, as for a
family of one; a larger family only widens it).

Scenarios with few expected discordant documents (n x disagreement < 10) are "discrete": the number of flips takes
a handful of values, so a non-randomized interval must over-cover (where nothing flips, the truth is inside); the
93-97% target is for the others. Unequal subtasks are more discrete than n x disagreement says: the subtask holding
10% of the documents carries 2/3 of the variance, and at n = 200 and 5% it expects 1 flip.
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
DISAGREEMENT = (0.02, 0.05, 0.15)
TRUE = (0.0, -0.5, -1.0, -2.0)
STRUCTURES = ("plain", "unequal subtasks", "shared documents")
BASE_RATE = 0.6
DISCRETE = 10
"""Expected discordant documents (n x disagreement) below which a scenario is discrete."""
TARGET = (0.93, 0.97)
REPS = 600
"""Replications per scenario: Monte Carlo standard error 0.9 points; the 180 scenarios took 101 s on an AMD EPYC
(bench/coverage.md)."""


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
    rs = [paired(_documents(rng, structure, n, q, delta)) for _ in range(reps)]
    # one call on every replication's row, as compare's table calls it on every line
    col = {f: np.array([getattr(r, f) for r in rs]) for f in ("diff", "se", "df", "flip_worth", "moved")}
    lo, hi = interval(col["diff"], col["se"], col["df"], 0.95, col["flip_worth"], col["moved"])
    counts = dict.fromkeys((v.value for v in Verdict), 0)
    for a, b in zip(lo, hi, strict=True):
        counts[decide(float(a), float(b), MARGIN).value] += 1
    coverage = float(np.mean((lo <= true * MARGIN) & (true * MARGIN <= hi)))
    return {
        "structure": structure,
        "n": n,
        "disagreement": q,
        "true_diff_x_margin": true,
        "reps": reps,
        "discrete": n * q < DISCRETE,
        "coverage": coverage,
        "coverage_mc_se": float(np.sqrt(coverage * (1 - coverage) / reps)),
        **{k: v / reps for k, v in counts.items()},
    }


def _only(spec: str) -> tuple[str, int, float, float]:
    """`structure:n:disagreement:true` (e.g. "unequal subtasks:1000:0.02:-2") for --only."""
    structure, n, q, true = spec.rsplit(":", 3)
    if structure not in STRUCTURES:
        raise argparse.ArgumentTypeError(f"structure {structure!r}: one of {', '.join(STRUCTURES)}")
    return structure, int(n), float(q), float(true)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=REPS, help=f"replications per scenario (default {REPS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--only",
        type=_only,
        action="append",
        metavar="STRUCTURE:N:DISAGREEMENT:TRUE",
        help='only this scenario (repeatable), e.g. "unequal subtasks:1000:0.02:-2"; prints, writes no figures',
    )
    args = p.parse_args(argv)
    info = run_info("bench.coverage", argv)
    rng = np.random.default_rng(args.seed)
    grid = args.only or [
        (s, n, q, t)
        for s in STRUCTURES
        for n in NS
        for q in DISAGREEMENT
        for t in TRUE
        if abs(t * MARGIN) / 100 <= q  # the table needs |difference| <= disagreement
    ]
    t0 = time.perf_counter()
    rows = [scenario(rng, s, n, q, t, args.reps) for s, n, q, t in grid]
    seconds = time.perf_counter() - t0
    if args.only:
        print("\n".join(_table(rows)))
        return 0
    summary = _summary(rows, args.reps, seconds)
    write("coverage", {**info, "summary": summary, "scenarios": rows}, _markdown(rows, summary, info))
    return 0


def _summary(rows: list[dict[str, Any]], reps: int, seconds: float) -> dict[str, Any]:
    mc = float(np.sqrt(0.95 * 0.05 / reps))
    judged = [r for r in rows if not r["discrete"] and r["n"] >= 50]
    discrete = [r for r in rows if r["discrete"]]
    lo, hi = TARGET
    return {
        "scenarios": len(rows),
        "reps": reps,
        "coverage_min_not_discrete": min(r["coverage"] for r in judged),
        "coverage_max_not_discrete": max(r["coverage"] for r in judged),
        "not_discrete": len(judged),
        "not_discrete_outside_target": sum(not lo <= r["coverage"] <= hi for r in judged),
        # outside the target by more than 2 Monte Carlo standard errors: not explained by the simulation's noise
        "not_discrete_outside_target_by_2_mc_se": sum(
            r["coverage"] < lo - 2 * mc or r["coverage"] > hi + 2 * mc for r in judged
        ),
        "coverage_min_discrete": min(r["coverage"] for r in discrete),
        "coverage_max_discrete": max(r["coverage"] for r in discrete),
        "discrete": len(discrete),
        "max_false_degraded_at_-0.5_margin": max(r["degraded"] for r in rows if r["true_diff_x_margin"] == -0.5),
        "max_false_recovered_at_-2_margin": max(
            r["recovered"] + r["within margin"] for r in rows if r["true_diff_x_margin"] == -2.0
        ),
        "monte_carlo_se_of_a_95pct_coverage": mc,
        "seconds": seconds,
    }


def _markdown(rows: list[dict[str, Any]], sm: dict[str, Any], info: dict[str, str]) -> list[str]:
    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    md = header("Coverage and error rates of `evalkit compare`'s decision procedure", info)
    md += [
        (__doc__ or "").strip(),
        "",
        f"{sm['scenarios']} scenarios x {sm['reps']} replications in {sm['seconds']:.0f} s. Monte Carlo standard error "
        f"of a coverage near 95%: {100 * sm['monte_carlo_se_of_a_95pct_coverage']:.2f} points (of a rate near 5%: "
        "the same); each row's own is in its MC SE column.",
        "",
        f"- coverage of the 95% interval, {sm['not_discrete']} scenarios not discrete (n x disagreement >= "
        f"{DISCRETE}): {pct(sm['coverage_min_not_discrete'])} to {pct(sm['coverage_max_not_discrete'])} (target "
        f"{TARGET[0]:.0%}-{TARGET[1]:.0%}); {sm['not_discrete_outside_target']} outside the target, "
        f"{sm['not_discrete_outside_target_by_2_mc_se']} by more than 2 Monte Carlo standard errors",
        f"- discrete ({sm['discrete']} scenarios, n x disagreement < {DISCRETE}: a non-randomized interval must "
        f"over-cover): {pct(sm['coverage_min_discrete'])} to {pct(sm['coverage_max_discrete'])}",
        f"- false `degraded` at -0.5 x margin, worst scenario: {pct(sm['max_false_degraded_at_-0.5_margin'])} "
        "(target <= 5%)",
        f"- false `recovered` / `within margin` at -2 x margin, worst scenario: "
        f"{pct(sm['max_false_recovered_at_-2_margin'])} (target <= 5%)",
        "",
        f"## Not discrete (n x disagreement >= {DISCRETE}): coverage target {TARGET[0]:.0%}-{TARGET[1]:.0%}",
        "",
        *_table([r for r in rows if not r["discrete"]]),
        "",
        f"## Discrete (n x disagreement < {DISCRETE}): a non-randomized interval must over-cover",
        "",
        *_table([r for r in rows if r["discrete"]]),
    ]
    return md


def _table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| structure | n | disagreement | n x disagreement | true diff (x margin) | coverage | MC SE | recovered "
        "| within margin | inconclusive | degraded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['structure']} | {r['n']} | {100 * r['disagreement']:.0f}% | {r['n'] * r['disagreement']:.4g} | "
        f"{r['true_diff_x_margin']:g} | {100 * r['coverage']:.1f}% | {100 * r['coverage_mc_se']:.1f} | "
        f"{100 * r['recovered']:.1f}% | {100 * r['within margin']:.1f}% | {100 * r['inconclusive']:.1f}% | "
        f"{100 * r['degraded']:.1f}% |"
        for r in rows
    ]
    return out


if __name__ == "__main__":
    sys.exit(main())
