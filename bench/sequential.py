"""The sequential rule's documents spent and error rates (evalkit/compare/sequential.py), replayed with
`evalkit replay`'s code on synthetic cells shaped like the study, and on a finished run's results with `--results`.
`make bench` runs it; the figures go to bench/sequential.md / .json.

Synthetic cells: Leaderboard v1 shaped (6 right/wrong tasks of 3000, 2600, 1319, 1172, 1267 and 817 documents, the
suite the mean of the task scores, baseline accuracies of an 8B model); a variant differs from the baseline on a
share of documents (disagreement), down or up so that its expected difference is the cell's true difference. Per
cell, `--populations` draws of the documents (each written as a results store and compared by `evalkit compare`:
the full-data verdict) x `--orders` random orders each. Margin 1 point. Both targets of the rule: the population
the documents are drawn from (default; what compare infers) and the documents themselves (finite population).

Reported per cell: the full-data verdicts, the mean share of the variant's documents run, the share of runs stopped
early, agreement of the reported verdict with the full-data verdict where that is conclusive (target >= 95%), and
the false-verdict rates against the truth (false recovered at -2 x margin <= 5%, whatever the stopping point).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.compare_speed import _samples_table, _scores_table
from bench.figures import header, run_info, write
from evalkit.compare import CompareSettings
from evalkit.compare.frame import read_samples
from evalkit.compare.replay import ReplaySettings, cells, replay, replay_cell
from evalkit.compare.sequential import RuleSettings
from evalkit.compare.verdict import Margin
from evalkit.results.store import ResultsStore

TASKS = {
    "mmlu": (3000, 0.68),
    "hellaswag": (2600, 0.80),
    "gsm8k": (1319, 0.78),
    "arc_challenge": (1172, 0.83),
    "winogrande": (1267, 0.77),
    "truthfulqa": (817, 0.55),
}
"""Task -> (documents, baseline accuracy): Leaderboard v1's six tasks at ~10,000 documents."""
MARGIN = 1.0


@dataclass(frozen=True)
class CellSpec:
    name: str
    disagreement: float
    """Share of documents where the variant's right/wrong differs from the baseline's."""
    true_diff: float
    """Expected difference of the suite score, points."""


CELLS = (
    CellSpec("fp8-like", 0.02, 0.0),
    CellSpec("w4a16-like", 0.08, -1.5),
    CellSpec("2%, -0.5 x margin", 0.02, -0.5 * MARGIN),
    CellSpec("8%, -0.5 x margin", 0.08, -0.5 * MARGIN),
    CellSpec("2%, -2 x margin", 0.02, -2.0 * MARGIN),
    CellSpec("8%, -2 x margin", 0.08, -2.0 * MARGIN),
)


def _variant(rng: np.random.Generator, base: np.ndarray, spec: CellSpec) -> np.ndarray:
    """Right answers turned wrong with P(down), wrong turned right with P(up): P(down) + P(up) = disagreement,
    P(up) - P(down) = true difference / 100 (every task moves by the same expected amount)."""
    down = (spec.disagreement - spec.true_diff / 100) / 2
    up = (spec.disagreement + spec.true_diff / 100) / 2
    p = base.mean()
    u = rng.random(len(base))
    return np.where(base == 1, u >= down / p, u < up / (1 - p)).astype(float)


def write_population(root: Path, seed: int) -> None:
    """One draw of every synthetic cell (a model per cell, its own bf16 baseline) as a results store."""
    rng = np.random.default_rng(seed)
    store = ResultsStore.open_for_writing(root)
    for spec in CELLS:
        base = {t: (rng.random(n) < acc).astype(float) for t, (n, acc) in TASKS.items()}
        for fmt in ("bf16", "variant"):
            cols: dict[str, list[np.ndarray]] = {k: [] for k in ("task", "doc", "value", "resp")}
            rows = []
            for task, values in base.items():
                value = values if fmt == "bf16" else _variant(rng, values, spec)
                cols["task"].append(np.full(len(value), task, dtype=object))
                cols["doc"].append(np.arange(len(value)))
                cols["value"].append(value)
                cols["resp"].append(np.where(value == 1, "A", "B").astype(object))
                rows.append((task, task, value))
            name = f"{spec.name}__{fmt}".replace(" ", "_").replace(",", "").replace("%", "pct")
            pq.write_table(_samples_table(spec.name, fmt, "synthetic_v1", cols), store.samples_dir / f"{name}.parquet")
            pq.write_table(
                _scores_table(spec.name, fmt, "synthetic_v1", "leaderboard_v1", rows),
                store.scores_dir / f"{name}.parquet",
            )


def _truth_label(true_diff: float) -> str:
    """What a correct verdict says of the true difference: recovered within the margin, degraded beyond it."""
    return "recovered" if true_diff >= -MARGIN else "degraded"


def synthetic(populations: int, orders: int, settings: ReplaySettings) -> pd.DataFrame:
    """One row per (cell, target, population, order)."""
    rows = []
    compare_settings = CompareSettings(baseline="bf16", margin=Margin(MARGIN))
    for pop in range(populations):
        with tempfile.TemporaryDirectory(prefix="evalkit-seq-bench-") as tmp:
            write_population(Path(tmp), seed=1000 + pop)
            found, _ = cells(read_samples(Path(tmp)), ResultsStore(Path(tmp)).read_scores(), compare_settings)
        for cell in found:
            spec = next(s for s in CELLS if s.name == cell.model)
            for finite in (False, True):
                rule = replace(settings.rule, finite=finite)
                run = replace(settings, orders=orders, seed=pop * orders, rule=rule)
                for r in replay_cell(cell, run):
                    rows.append(
                        {"cell": spec.name, "finite": finite, "population": pop, **asdict(r)}
                        | {"full_verdict": cell.full_verdict, "true_diff": spec.true_diff}
                    )
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (name, finite), g in runs.groupby(["cell", "finite"], sort=False):
        spec = next(s for s in CELLS if s.name == name)
        truth = _truth_label(spec.true_diff)
        conclusive = g[g["full_verdict"].isin(["recovered", "within margin", "degraded"])]
        non_inferior = g["label"].isin(["recovered", "within margin"])  # the claim "ship it" (verdict.py)
        full = g.drop_duplicates("population")["full_verdict"].value_counts(normalize=True)
        out.append(
            {
                "cell": name,
                "target": "documents" if finite else "population",
                "disagreement": spec.disagreement,
                "true_diff": spec.true_diff,
                "runs": len(g),
                "full-data verdicts": ", ".join(f"{v} {100 * s:.0f}%" for v, s in full.items()),
                "docs used": float(g["fraction"].mean()),
                "stopped early": float((g["decision"] != "continue").mean()),
                "agreement (conclusive)": float(conclusive["agrees"].mean()) if len(conclusive) else np.nan,
                "false recovered": float(non_inferior.mean()) if truth == "degraded" else np.nan,
                "false degraded": float((g["label"] == "degraded").mean()) if truth == "recovered" else np.nan,
            }
        )
    return pd.DataFrame(out)


def _records(table: pd.DataFrame) -> list[dict[str, object]]:
    """Rows for JSON: NaN (a rate that does not apply to the cell) as null."""
    return [
        {str(k): (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in table.to_dict("records")
    ]


def _pct(x: float) -> str:
    return "-" if pd.isna(x) else f"{100 * x:.1f}%"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--populations", type=int, default=10, help="draws of each synthetic cell (default 10)")
    p.add_argument("--orders", type=int, default=20, help="random orders per draw (default 20: 200 runs per cell)")
    p.add_argument("--chunk", type=int, default=200, help="documents per chunk of the synthetic cells (2%%)")
    p.add_argument("--results", type=Path, default=None, help="also replay a finished run's results folder")
    p.add_argument("--results-orders", type=int, default=200, help="orders per cell of --results (default 200)")
    args = p.parse_args(argv)
    info = run_info("bench.sequential", argv)
    t0 = time.perf_counter()
    settings = ReplaySettings(chunk=args.chunk, rule=RuleSettings())
    runs = synthetic(args.populations, args.orders, settings)
    table = summary(runs)
    seconds = time.perf_counter() - t0
    md = header("Sequential (adaptive) evaluation: documents spent and error rates", info)
    md += [
        f"CPU: {_cpu()} (2 busy cores). {seconds:.0f} s for the synthetic cells.",
        "",
        f"Synthetic Leaderboard-v1-shaped cells (6 tasks, {sum(n for n, _ in TASKS.values()):,} documents), margin "
        f"{MARGIN:g} point, a look every {args.chunk} documents, alpha 0.05 (two-sided); {args.populations} draws "
        f"of each cell x {args.orders} random orders = {args.populations * args.orders} runs per cell and target. "
        "The reported verdict is the rule's where it stopped early, else `evalkit compare`'s on every document "
        "(evalkit.compare.verdict.decide on the interval: recovered / within margin = lower bound >= -margin, "
        "degraded = upper bound < -margin). Agreement: over the runs whose full-data verdict is conclusive; a stop "
        "at `recovered` and a full-data `within margin` (or the reverse) make the same non-inferiority claim and "
        "agree. False recovered (recovered or within margin) / degraded: against the true difference (recovered is "
        "false when it is below -margin, degraded when it is not).",
        "",
        "| cell | target | true diff | full-data verdicts | docs used | stopped early | agreement (conclusive) "
        "| false recovered | false degraded |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.to_dict("records"):
        md.append(
            f"| {r['cell']} | {r['target']} | {r['true_diff']:+.1f} | {r['full-data verdicts']} | "
            f"{_pct(r['docs used'])} | {_pct(r['stopped early'])} | {_pct(r['agreement (conclusive)'])} | "
            f"{_pct(r['false recovered'])} | {_pct(r['false degraded'])} |"
        )
    result: dict[str, object] = {**info, "cpu": _cpu(), "synthetic": _records(table)}
    if args.results is not None:
        found, _ = cells(
            read_samples(args.results), ResultsStore(args.results).read_scores(), CompareSettings(margin=Margin(MARGIN))
        )
        demo = replay(found, ReplaySettings(orders=args.results_orders, chunk=None, rule=RuleSettings()))
        md += [
            "",
            f"## {args.results}: {args.results_orders} random orders per cell, a look every 2% of a cell's "
            "documents (at least one per stratum), target: the population",
            "",
            "The rule counts a task's document once per task that scores it (`task docs`): a document two tasks share "
            "(MMLU and MMLU-CoT, HumanEval and HumanEval+) is two units here and one in `evalkit compare` (its "
            "`n`), so these cells show more units than compare's documents.",
            "",
            "| model | format | suite | task docs | diff | full-data verdict | docs used | stopped early "
            "| recovered | degraded | agreement |",
            "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in demo.to_dict("records"):
            md.append(
                f"| {r['model']} | {r['format']} | {r['suite']} | {r['n_docs']} | {r['diff']:+.2f} | "
                f"{r['full_verdict']} | {_pct(r['mean_fraction'])} | {_pct(r['stopped_early'])} | "
                f"{_pct(r['share_recovered'] + r['share_within-margin'])} | {_pct(r['share_degraded'])} | "
                f"{_pct(r['agreement'])} |"
            )
        result["results"] = _records(demo)
    write("sequential", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
