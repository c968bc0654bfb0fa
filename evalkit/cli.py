"""`evalkit` command: sweep, run, score, status, cancel, aggregate, compare, report, replay, recommend, prefetch,
doctor (`evalkit COMMAND --help` says what each does). Hydra overrides pass through unchanged.

evalkit sweep model=smollm2-135m-instruct format=bf16,fp8,w8a8,w4a16 benchmark=demo_leaderboard_v1,demo_leaderboard_v2
evalkit run model=... format=fp8 benchmark=demo_leaderboard_v1      # re-run exactly this cell
evalkit score model=... format=fp8 benchmark=demo_humaneval         # score generated cells, no server (CPU step)
evalkit status format=bf16,fp8 [--failed]
evalkit cancel sweep=study launcher=slurm            # scancel the sweep's Slurm jobs
evalkit aggregate [--results DIR]
evalkit compare [--results DIR] [--baseline bf16] [--margin 1.0] [--policy FILE] [--gate] [--lm-eval-runs DIR...]
evalkit report [--results DIR] [--out FILE]           # one self-contained HTML page of the results
evalkit replay [--results DIR] [--orders 200]         # what adaptive evaluation would have spent and decided
evalkit recommend --suites leaderboard_v1,leaderboard_v2 [--prices FILE]   # cheapest non-inferior format per scenario
evalkit prefetch model=llama-3.1-8b-instruct format=bf16,fp8 benchmark=leaderboard_v1
evalkit doctor model=llama-3.1-8b-instruct format=bf16,fp8 benchmark=leaderboard_v1 server=gpu   # ready?
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.core.enums import CellStatus, Phase
from evalkit.core.errors import ConfigError, EvalkitError
from evalkit.core.formats import BASELINE_FORMAT
from evalkit.util.files import write_atomic

if TYPE_CHECKING:
    import pyarrow as pa

    from evalkit.compare import Margin
    from evalkit.status import CellView


def _compose_jobs(overrides: Sequence[str], check_adapters: bool = True, writable: bool = False) -> list[object]:
    """Compose and plan every job of the grid the overrides describe (no side effects beyond reading the store).

    Hydra's own errors (unknown group choice, bad override syntax, a key that cannot be overridden) become
    ConfigError, so every configuration error exits 2. `writable`: also refuse results / jobs folders this user
    cannot write (checked before the store is opened, which would fail with a bare PermissionError).
    """
    from evalkit.core.validate import check_overrides
    from evalkit.pipeline.compose import compose_grid
    from evalkit.pipeline.plan import plan_job

    check_overrides(overrides)
    configs = compose_grid(overrides)
    if writable:
        from evalkit.doctor import check_writable
        from evalkit.pipeline.plan import typed

        for cfg in configs:
            paths = typed(cfg).paths
            for key, path in (("paths.results", paths.results), ("paths.jobs", paths.jobs)):
                check = check_writable(key, Path(path))
                if not check.ok:
                    raise ConfigError(f"{key}={path!r}: {check.detail}", hint=check.fix)
    # Reads (status, cancel, prefetch) plan without the scoring-runtime check (HumanEval's sandbox): they run no job.
    return [plan_job(cfg, check_adapters=check_adapters, check_runtime=writable) for cfg in configs]


def cmd_sweep(args: argparse.Namespace) -> int:
    from evalkit.app import hydra_main
    from evalkit.core import grid

    if args.json and not args.dry_run:
        raise ConfigError("--json renders the plan of a dry run", hint="use `evalkit sweep --dry-run --json ...`")
    # refuse bad input here, before Hydra or a GPU; the JSON plan lists the adapters' refusals itself
    _compose_jobs(args.overrides, check_adapters=not args.json, writable=not args.json)
    extra = ["hydra.sweeper.dry_run=true"] if args.dry_run else []
    extra += ["hydra.sweeper.json=true"] if args.json else []
    extra += ["hydra.sweeper.wait=true"] if args.wait else []
    hydra_main(["-m", *grid.group_benchmarks(args.overrides), *extra])
    if args.dry_run:
        return 0
    plans = _compose_jobs(args.overrides, check_adapters=False)  # once, for the status table and the reports
    code = _report_status(args.overrides, failed_only=False, plans=plans)
    _write_sweep_reports(plans)
    return code


def _write_sweep_reports(plans: Sequence[object]) -> None:
    """The HTML report beside each results folder the sweep wrote to (on Slurm, of what has finished so far; the
    aggregate job rewrites it when every job has ended)."""
    from evalkit.pipeline.plan import JobPlan, results_dir
    from evalkit.report import write_sweep_report

    jobs = [p for p in plans if isinstance(p, JobPlan)]
    for results in dict.fromkeys(results_dir(p.cfg) for p in jobs):
        print(write_sweep_report(results))


def cmd_run(args: argparse.Namespace) -> int:
    from evalkit.app import hydra_main
    from evalkit.core import grid

    overrides = grid.normalize(args.overrides)
    _compose_jobs(args.overrides, writable=True)  # refuse bad input before a checkpoint is resolved
    hydra_main([*overrides, f"force={'false' if args.resume else 'true'}", f"phase={args.phase}"])
    return _report_status(args.overrides, failed_only=False)


def _views(plans: Sequence[object]) -> list[CellView]:
    """Status of every cell of the planned jobs: the store, and Slurm's job states where the sweep went to Slurm."""
    from evalkit.pipeline.plan import JobPlan, job_dir_of
    from evalkit.status import grid_views

    by_sweep: dict[Path, list[JobPlan]] = {}
    for plan in plans:
        assert isinstance(plan, JobPlan)
        by_sweep.setdefault(job_dir_of(plan.cfg).parent, []).append(plan)
    views: list[CellView] = []
    for sweep_dir, group in by_sweep.items():
        found, note = grid_views([c for p in group for c in p.cells], [r for p in group for r in p.records], sweep_dir)
        if note:
            print(f"evalkit: warning: {note}", file=sys.stderr)
        views += found
    return views


def _report_status(overrides: Sequence[str], failed_only: bool, plans: Sequence[object] | None = None) -> int:
    from evalkit.tables import render_failures, render_grid_status

    # reading status needs no adapter checks (data present, judge key set): those guard runs, not reports
    views = _views(plans if plans is not None else _compose_jobs(overrides, check_adapters=False))
    if not failed_only:
        print(render_grid_status(views))
    failures = render_failures(views)
    if failures:
        print("\n" + failures)
    return 1 if any(v.status is CellStatus.FAILED for v in views) else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the sweep's submitted jobs that have not ended (scancel on Slurm): all of them, or only those running
    the cells of the model / format / benchmark given. Idempotent: jobs that already ended are left alone."""
    from evalkit.core import grid
    from evalkit.launch import JobState, registry
    from evalkit.launch import record as job_record
    from evalkit.pipeline.plan import JobPlan, job_dir_of

    plans = [p for p in _compose_jobs(args.overrides, check_adapters=False) if isinstance(p, JobPlan)]
    narrowed = any(o.get_key_element() in ("model", "format", "benchmark") for o in grid.parse(args.overrides))
    cells = {c.key for p in plans for c in p.cells} if narrowed else None
    for sweep_dir in dict.fromkeys(job_dir_of(p.cfg).parent for p in plans):
        found = registry.submitted_by(sweep_dir)
        if found is None:
            print(
                f"sweep {sweep_dir.name}: nothing was submitted to a cluster ({job_record.path_of(sweep_dir)} missing)"
            )
            continue
        launcher, rec = found
        jobs = rec.jobs_for(cells)
        states = launcher.states([j.job_id for j in jobs])
        live = [j for j in jobs if not states.get(j.job_id, JobState.NOT_FOUND).finished]
        if not live:
            print(f"sweep {rec.sweep}: nothing to cancel; its {len(jobs)} {launcher.title} job(s) have all ended")
            continue
        launcher.cancel([j.job_id for j in live])
        for j in live:
            print(f"cancelled {j.job_id} ({j.kind} {j.name}, was {states[j.job_id].value})")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """The CPU step: score every generated, not yet committed cell of the grid, with no server."""
    from evalkit.app import hydra_main
    from evalkit.core import grid

    _compose_jobs([*args.overrides, "phase=score"], writable=True)
    hydra_main(["-m", *grid.group_benchmarks(args.overrides), "phase=score"])
    return _report_status(args.overrides, failed_only=False)


def cmd_status(args: argparse.Namespace) -> int:
    return _report_status(args.overrides, failed_only=args.failed)


def cmd_aggregate(args: argparse.Namespace) -> int:
    from evalkit.compare.recovery import aggregate_results
    from evalkit.compare.sequential import early_stop_notes
    from evalkit.results.store import ResultsStore

    results = Path(args.results)
    _check_results_dir(results)
    print(aggregate_results(results, args.baseline))
    print("".join(f"note: {n}\n" for n in early_stop_notes(ResultsStore(results).adaptive_records())), end="")
    return 0


def _check_results_dir(results: Path) -> None:
    """`aggregate` reads `<results>/scores`: refuse a directory without it instead of creating an empty tree there
    (a mistyped --results) or reporting "no results" for tables left at the top level."""
    scores = results / "scores"
    if scores.is_dir():
        return
    if not results.is_dir():
        raise ConfigError(
            f"--results {results}: no such directory", hint="pass the directory that holds scores/ (default: results)"
        )
    stray = sorted(p.name for p in results.glob("*.parquet"))
    if stray:
        raise ConfigError(
            f"--results {results}: no scores/ folder; found {len(stray)} Parquet file(s) at the top level "
            f"({', '.join(stray[:5])}{', ...' if len(stray) > 5 else ''}), which aggregate does not read",
            hint=f"move them to {scores}/ (the results contract: README, 'Results contract')",
        )
    found = sorted(p.name for p in results.iterdir())[:8]
    raise ConfigError(
        f"--results {results}: no scores/ folder (found: {', '.join(found) or 'nothing'})",
        hint="pass the directory that holds scores/ (default: results)",
    )


GATE_EXIT = 3
"""`evalkit compare --gate` exit status when the policy blocks (0: it passes; 2 stays "evalkit error": bad input,
nothing decided). The policy (conf/policy/default.yaml) says which outcomes block, per tier of suite and task."""


def _margin(text: str) -> Margin:
    from evalkit.compare import CompareError, Margin

    try:
        return Margin.parse(text)
    except ValueError:
        raise CompareError(f"--margin {text!r} is neither points (1.0) nor percent of baseline (2%)") from None


def cmd_compare(args: argparse.Namespace) -> int:
    from evalkit.compare import CompareSettings, compare, gate, load_policy, render
    from evalkit.compare.frame import read_samples
    from evalkit.compare.sequential import adaptive_subsets, early_stop_notes
    from evalkit.results.aggregate import REQUIRED_COLUMNS
    from evalkit.results.store import ResultsStore

    policy = load_policy(Path(args.policy) if args.policy else None)
    margin = _margin(args.margin) if args.margin is not None else policy.margin
    results = Path(args.results)
    if args.lm_eval_runs:
        from evalkit.compare.external import store_from_runs

        store_from_runs([Path(f) for f in args.lm_eval_runs], args.baseline, results)
    _check_results_dir(results)
    store = ResultsStore(results)
    scores, adaptive = store.read_scores(required=REQUIRED_COLUMNS), store.adaptive_records()
    subsets = adaptive_subsets(adaptive, dict(zip(scores["benchmark"], scores["suite"], strict=True)))
    settings = CompareSettings.of(policy, args.baseline, margin, method=args.method, seed=args.seed, subsets=subsets)
    has_samples = any((results / "samples").glob("*.parquet"))
    samples = read_samples(results) if has_samples else None
    table, notes = compare(samples, scores, settings)
    notes += early_stop_notes(adaptive)
    print(render(table, settings, with_tasks=args.tasks))
    for note in notes:
        print(f"note: {note}")
    out = results / "compare"
    write_atomic(out / "comparisons.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    print(f"\nwritten: {out / 'comparisons.parquet'}")
    if samples is not None:
        _compare_outputs(args, samples, out)
    blocked = gate(table, policy)
    if args.gate and blocked:
        print("evalkit: gate: blocked by " + "; ".join(blocked), file=sys.stderr)
        return GATE_EXIT
    if args.gate:
        print(f"gate: passes ({args.policy or 'conf/policy/default.yaml'})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from evalkit.compare import CompareSettings
    from evalkit.compare.frame import read_samples
    from evalkit.compare.replay import ReplaySettings, cells, render, replay
    from evalkit.compare.sequential import RuleSettings
    from evalkit.results.store import ResultsStore

    results = Path(args.results)
    _check_results_dir(results)
    margin = _margin(args.margin)
    settings = ReplaySettings(
        orders=args.orders,
        chunk=args.chunk,
        seed=args.seed,
        rule=RuleSettings(alpha=args.alpha, finite=args.population == "documents"),
    )
    found, notes = cells(
        read_samples(results), ResultsStore(results).read_scores(), CompareSettings(args.baseline, margin)
    )
    table = replay(found, settings)
    print(render(table, settings, margin))
    print("".join(f"note: {note}\n" for note in notes), end="")
    (results / "compare").mkdir(parents=True, exist_ok=True)
    table.to_parquet(written := results / "compare" / "replay.parquet", index=False)
    print(f"\nwritten: {written}")
    return 0


def _compare_outputs(args: argparse.Namespace, samples: pa.Table, out: Path) -> None:
    """Token divergence (whenever divergence cells exist) and, with --similarity, text similarity of the arena
    answers: each vs the baseline, a terminal table and a Parquet table under results/compare/."""
    from evalkit.compare import similarity, token_divergence

    tokens = token_divergence.compare_divergence(samples, args.baseline)
    if not tokens.empty:
        print("\ntoken divergence vs " + args.baseline + " (KL over the baseline's top-k plus tail mass)")
        print(token_divergence.render(tokens))
        write_atomic(out / "token_divergence.parquet", lambda tmp: tokens.to_parquet(tmp, index=False))
        print(f"written: {out / 'token_divergence.parquet'}")
    if args.similarity:
        models = similarity.SimilarityModels(args.bertscore_model, args.bertscore_layers, args.sts_model)
        table = similarity.compare_similarity(samples, args.baseline, similarity.Scorers(models))
        print(f"\ntext similarity of the arena answers vs {args.baseline} (0-1, mean over prompts)")
        print(similarity.render(table) if not table.empty else "no arena_hard answers of two formats to compare")
        write_atomic(out / "similarity.parquet", lambda tmp: table.to_parquet(tmp, index=False))
        print(f"written: {out / 'similarity.parquet'}")


def cmd_report(args: argparse.Namespace) -> int:
    from evalkit.report import write_report

    results = Path(args.results)
    _check_results_dir(results)
    out = write_report(results, Path(args.out) if args.out else results / "report.html")
    print(f"report: {out.resolve()}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:

    from evalkit.perf.cost import DEFAULT_PRICES, Slo, load_prices
    from evalkit.perf.recommend import recommend, render
    from evalkit.perf.table import read_perf, render_curves, write_perf
    from evalkit.results.store import read_parquet

    results = Path(args.results)
    _check_results_dir(results)
    verdicts_file = results / "compare" / "comparisons.parquet"
    if not verdicts_file.exists():
        raise ConfigError(
            f"no accuracy verdicts: {verdicts_file} does not exist", hint=f"run evalkit compare --results {results}"
        )
    prices = load_prices(Path(args.prices) if args.prices else DEFAULT_PRICES)
    slo = Slo(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, percentile=args.percentile)
    perf = read_perf(results)
    if perf.empty:
        raise ConfigError(
            f"{results} holds no perf rows", hint="run the perf benchmark first: evalkit sweep benchmark=perf ..."
        )
    print(f"perf table: {write_perf(perf, results)}\n")
    print(render_curves(perf))
    verdicts = read_parquet(verdicts_file).to_pandas()
    table = recommend(perf, verdicts, args.suites.split(","), prices, slo, args.baseline)
    print("\n" + render(table, prices, slo))
    out = results / "perf"
    write_atomic(out / "recommend.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    write_atomic(out / "recommend.csv", lambda tmp: table.to_csv(tmp, index=False))
    print(f"\nwritten: {out / 'recommend.parquet'}, {out / 'recommend.csv'}")
    return 0


def cmd_prefetch(args: argparse.Namespace) -> int:
    from evalkit.pipeline.prefetch import prefetch

    prefetch(_compose_jobs(args.overrides, check_adapters=False))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from evalkit.doctor import doctor, render

    checks = doctor(args.overrides)
    print(render(checks))
    return 0 if all(c.ok for c in checks) else 1


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose own `--help` says what it does: argparse shows `help` only in `evalkit --help`'s list."""
    return sub.add_parser(name, help=summary, description=summary)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evalkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = _command(sub, "sweep", "run the model x format x benchmark grid (only cells not yet complete)")
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="print the jobs and their cells (on Slurm: resources and sbatch scripts, checked), launch nothing",
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: print the plan as one JSON document (jobs, cells, server and harness commands, "
        "data sources, sbatch scripts) and nothing else on stdout",
    )
    s.add_argument("--wait", action="store_true", help="launcher=slurm: follow the submitted jobs until they end")
    s.add_argument("overrides", nargs="*", help="Hydra overrides; comma lists sweep")
    s.set_defaults(func=cmd_sweep)

    r = _command(sub, "run", "run one model x format now, replacing the rows of its cells")
    r.add_argument("--resume", action="store_true", help="skip cells that are already complete")
    r.add_argument(
        "--phase",
        choices=[p.value for p in Phase],
        default=Phase.all.value,
        help="generate: serve and generate only (scoring follows with `evalkit score`); default: both",
    )
    r.add_argument("overrides", nargs="*")
    r.set_defaults(func=cmd_run)

    sc = _command(sub, "score", "score generated cells without a server (the CPU step after GPU jobs)")
    sc.add_argument("overrides", nargs="*")
    sc.set_defaults(func=cmd_score)

    st = _command(sub, "status", "done / running / queued / failed / stale / missing per cell of a grid")
    st.add_argument("--failed", action="store_true", help="list only the failed cells, with error and log")
    st.add_argument("overrides", nargs="*")
    st.set_defaults(func=cmd_status)

    c = _command(sub, "cancel", "cancel the Slurm jobs of a sweep (scancel; idempotent)")
    c.add_argument(
        "overrides", nargs="*", help="the sweep's overrides; model/format/benchmark narrow it to those cells"
    )
    c.set_defaults(func=cmd_cancel)

    a = _command(sub, "aggregate", "recovery tables (quantized / baseline) from a results directory")
    a.add_argument("--results", default="results", help="directory holding scores/ (default: results)")
    a.add_argument("--baseline", default=BASELINE_FORMAT, help=f"baseline format (default: {BASELINE_FORMAT})")
    a.set_defaults(func=cmd_aggregate)

    cm = _command(sub, "compare", "paired statistics and verdicts of each format vs the baseline")
    cm.add_argument("--results", default="results", help="directory holding scores/ and samples/ (default: results)")
    cm.add_argument("--baseline", default=BASELINE_FORMAT, help=f"baseline format (default: {BASELINE_FORMAT})")
    cm.add_argument(
        "--margin", default=None, help="points of the suite's scale, or percent of baseline: 2%% (default: policy's)"
    )
    cm.add_argument("--policy", default=None, help="gate policy YAML (default: conf/policy/default.yaml)")
    cm.add_argument(
        "--lm-eval-runs",
        nargs="+",
        default=None,
        metavar="DIR",
        help="lm-eval --log_samples output folders made elsewhere: baseline first, then variants; written as a "
        "results store under --results, then compared",
    )
    cm.add_argument("--method", choices=["holm", "bh"], default="holm", help="multiple-comparison adjustment")
    cm.add_argument("--tasks", action="store_true", help="also print each suite's task rows")
    cm.add_argument("--seed", type=int, default=0, help="seed of the random draws (none left in the verdicts)")
    cm.add_argument("--gate", action="store_true", help=f"exit {GATE_EXIT} when the policy blocks (0 passes)")
    cm.add_argument(
        "--similarity",
        action="store_true",
        help="also score the text similarity of the arena answers (ROUGE, BERTScore, STS; CPU, loads two models)",
    )
    cm.add_argument(
        "--bertscore-model", default="roberta-large", help="BERTScore model, hub id or directory (study: roberta-large)"
    )
    cm.add_argument("--bertscore-layers", type=int, default=None, help="BERTScore layer (default: bert-score's)")
    cm.add_argument("--sts-model", default=None, help="sentence-transformers model (default: bundled all-MiniLM-L6-v2)")
    cm.set_defaults(func=cmd_compare)

    ry = _command(sub, "replay", "what adaptive evaluation would have spent and decided on a full run")
    ry.add_argument("--results", default="results", help="directory holding scores/ and samples/ (default: results)")
    ry.add_argument("--baseline", default=BASELINE_FORMAT, help=f"baseline format (default: {BASELINE_FORMAT})")
    ry.add_argument("--margin", default="1.0", help="points of the suite's scale, or percent of baseline: 2%%")
    ry.add_argument("--orders", type=int, default=200, help="random document orders per cell (default: 200)")
    ry.add_argument("--chunk", type=int, default=None, help="documents per chunk (default: 2%% of a cell's)")
    ry.add_argument("--alpha", type=float, default=0.05, help="error rate of the confidence sequence, two-sided")
    ry.add_argument(
        "--population",
        choices=["superpopulation", "documents"],
        default="superpopulation",
        help="infer the difference of the population the documents are drawn from (as compare) or of the "
        "documents themselves (finite population: stops sooner, claims less)",
    )
    ry.add_argument("--seed", type=int, default=0, help="seed of the first order")
    ry.set_defaults(func=cmd_replay)

    rp = _command(sub, "report", "one self-contained HTML page: verdicts, per-task CIs, divergence, perf, failures")
    rp.add_argument("--results", default="results", help="directory holding scores/ and samples/ (default: results)")
    rp.add_argument("--out", default=None, help="HTML file to write (default: <results>/report.html)")
    rp.set_defaults(func=cmd_report)

    rc = _command(
        sub,
        "recommend",
        "per scenario, the cheapest format whose accuracy is non-inferior (recovered or within margin)",
    )
    rc.add_argument("--results", default="results", help="directory holding scores/, samples/, compare/")
    rc.add_argument("--suites", required=True, help="comma list of suites the format must be non-inferior on")
    rc.add_argument("--prices", help="price table YAML (default: conf/prices/study_2024-10-28.yaml, the study's)")
    rc.add_argument("--baseline", default=BASELINE_FORMAT, help=f"baseline format (default: {BASELINE_FORMAT})")
    rc.add_argument("--ttft-ms", type=float, default=1000.0, help="async SLO: TTFT bound (default 1000 ms)")
    rc.add_argument("--itl-ms", type=float, default=100.0, help="async SLO: inter-token latency bound (default 100)")
    rc.add_argument("--percentile", type=int, choices=[50, 90, 99], default=90, help="SLO percentile (default 90)")
    rc.set_defaults(func=cmd_recommend)

    pf = _command(sub, "prefetch", "on a machine with internet: cache the checkpoints and datasets of a grid")
    pf.add_argument("overrides", nargs="*")
    pf.set_defaults(func=cmd_prefetch)

    d = _command(sub, "doctor", "is this node ready for the sweep? versions, GPUs, Slurm, cache, sandbox, keys")
    d.add_argument("overrides", nargs="*", help="the sweep's overrides")
    d.set_defaults(func=cmd_doctor)
    return p


INTERRUPTED_EXIT = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EvalkitError as err:
        print(f"evalkit: error: {err.message}", file=sys.stderr)
        return 2
    except PermissionError as err:
        # a file or folder this user may not read or write, met where no check named it first: still no traceback
        where = err.filename or "a file"
        print(
            f"evalkit: error: permission denied: {where} ({args.command})\n  next: point the paths (paths.results, "
            f"paths.jobs, --results) at folders you can write, or ask the owner of {where} for access",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        # the job logged each cell it left pending; nothing was committed for them
        print(
            "\nevalkit: interrupted; unfinished cells stay pending (nothing was recorded for them)\n"
            f"  next: run the same `evalkit {args.command}` again to resume them",
            file=sys.stderr,
        )
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
