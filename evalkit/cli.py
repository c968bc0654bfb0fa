"""`evalkit` command: sweep, run, status, aggregate, prefetch. Hydra overrides pass through unchanged.

evalkit sweep model=smollm2-135m-instruct format=bf16,fp8,w8a8,w4a16 benchmark=demo_leaderboard_v1,demo_leaderboard_v2
evalkit run model=... format=fp8 benchmark=demo_leaderboard_v1      # re-run exactly this cell
evalkit status format=bf16,fp8 [--failed]
evalkit aggregate [--results DIR]
evalkit prefetch model=llama-3.1-8b-instruct format=bf16,fp8 benchmark=leaderboard_v1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from evalkit.errors import EvalkitError


def _compose_jobs(overrides: Sequence[str], check_adapters: bool = True) -> list[object]:
    """Compose and plan every job of the grid the overrides describe (no side effects beyond reading the store)."""
    from hydra import compose, initialize_config_dir

    from evalkit import grid
    from evalkit.app import CONF_DIR
    from evalkit.config import register_configs
    from evalkit.plan import plan_job

    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        jobs = grid.expand(overrides)
        return [plan_job(compose("config", overrides=job), check_adapters=check_adapters) for job in jobs]


def cmd_sweep(args: argparse.Namespace) -> int:
    from evalkit import grid
    from evalkit.app import hydra_main

    extra = ["hydra.sweeper.dry_run=true"] if args.dry_run else []
    hydra_main(["-m", *grid.group_benchmarks(args.overrides), *extra])
    if args.dry_run:
        return 0
    return _report_status(args.overrides, failed_only=False)


def cmd_run(args: argparse.Namespace) -> int:
    from evalkit import grid
    from evalkit.app import hydra_main

    overrides = grid.normalize(args.overrides)
    hydra_main([*overrides, f"force={'false' if args.resume else 'true'}", f"phase={args.phase}"])
    return _report_status(args.overrides, failed_only=False)


def _report_status(overrides: Sequence[str], failed_only: bool) -> int:
    import pandas as pd

    from evalkit.report import render_status
    from evalkit.store import CellState

    plans = _compose_jobs(overrides)
    matrix: dict[str, dict[str, str]] = {}
    failed = []
    for plan in plans:
        for cell, rec in zip(plan.cells, plan.records, strict=True):  # type: ignore[attr-defined]
            matrix.setdefault(f"{cell.model}/{cell.format}", {})[cell.benchmark] = rec.state.value
            if rec.state is CellState.FAILED:
                failed.append((cell, rec))
    if not failed_only:
        print(render_status(pd.DataFrame.from_dict(matrix, orient="index").fillna("")))
    for cell, rec in failed:
        print(
            f"\nFAILED {cell.key}\n  error: {rec.error}\n  log:   {rec.log_path}\n"
            f"  rerun: evalkit run model={cell.model} format={cell.format} benchmark={cell.benchmark}"
        )
    return 1 if failed else 0


def cmd_score(args: argparse.Namespace) -> int:
    """The CPU step: score every generated, not yet committed cell of the grid, with no server."""
    from evalkit import grid
    from evalkit.app import hydra_main

    hydra_main(["-m", *grid.group_benchmarks(args.overrides), "phase=score"])
    return _report_status(args.overrides, failed_only=False)


def cmd_status(args: argparse.Namespace) -> int:
    return _report_status(args.overrides, failed_only=args.failed)


def cmd_aggregate(args: argparse.Namespace) -> int:
    from evalkit.aggregate import REQUIRED_COLUMNS, recovery_table
    from evalkit.report import render_recovery
    from evalkit.store import ResultsStore

    results = Path(args.results)
    table = recovery_table(ResultsStore(results).read_scores(required=REQUIRED_COLUMNS), args.baseline)
    print(render_recovery(table, args.baseline))
    out = results / "aggregate"
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "recovery.parquet", index=False)
    table.to_csv(out / "recovery.csv", index=False)
    print(f"\nwritten: {out / 'recovery.parquet'}, {out / 'recovery.csv'}")
    return 0


def cmd_prefetch(args: argparse.Namespace) -> int:
    from evalkit.prefetch import prefetch

    prefetch(_compose_jobs(args.overrides, check_adapters=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evalkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="run the model x format x benchmark grid (only cells not yet complete)")
    s.add_argument("--dry-run", action="store_true", help="print the jobs and their cells, launch nothing")
    s.add_argument("overrides", nargs="*", help="Hydra overrides; comma lists sweep")
    s.set_defaults(func=cmd_sweep)

    r = sub.add_parser("run", help="run one model x format now, replacing the rows of its cells")
    r.add_argument("--resume", action="store_true", help="skip cells that are already complete")
    r.add_argument(
        "--phase",
        choices=["all", "generate", "score"],
        default="all",
        help="generate: serve and generate only (scoring follows with `evalkit score`); default: both",
    )
    r.add_argument("overrides", nargs="*")
    r.set_defaults(func=cmd_run)

    sc = sub.add_parser("score", help="score generated cells without a server (the CPU step after GPU jobs)")
    sc.add_argument("overrides", nargs="*")
    sc.set_defaults(func=cmd_score)

    st = sub.add_parser("status", help="done / failed / stale / missing per cell of a grid")
    st.add_argument("--failed", action="store_true", help="list only the failed cells, with error and log")
    st.add_argument("overrides", nargs="*")
    st.set_defaults(func=cmd_status)

    a = sub.add_parser("aggregate", help="recovery tables (quantized / baseline) from a results directory")
    a.add_argument("--results", default="results", help="directory holding scores/ (default: results)")
    a.add_argument("--baseline", default="bf16", help="baseline format (default: bf16)")
    a.set_defaults(func=cmd_aggregate)

    pf = sub.add_parser("prefetch", help="on a machine with internet: cache the checkpoints and datasets of a grid")
    pf.add_argument("overrides", nargs="*")
    pf.set_defaults(func=cmd_prefetch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EvalkitError as err:
        print(f"evalkit: error: {err.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
