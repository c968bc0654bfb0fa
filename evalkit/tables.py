"""Rendering tables for people: the sweep status matrix, failures, the plan. Pure functions returning strings.

The recovery table renders beside its computation (`evalkit.results.aggregate`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from evalkit.core.enums import CellStatus
from evalkit.status import CellView
from evalkit.util.text import text_table

if TYPE_CHECKING:
    from evalkit.pipeline.plan import JobPlan

STATE_MARK = {
    CellStatus.DONE: "done",
    CellStatus.FAILED: "FAILED",
    CellStatus.STALE: "stale",
    CellStatus.MISSING: "-",
    CellStatus.RUNNING: "running",
    CellStatus.QUEUED: "queued",
    CellStatus.PARTIAL: "partial",
}
"""How a status reads in the matrix: failures stand out, missing cells recede."""


def render_grid_status(views: Sequence[CellView]) -> str:
    """The grid as a matrix: model/format rows, benchmark columns, a cell's status in each; when the sweep went to
    Slurm, a last column with the row's job(s) and their states; then the count per status."""
    rows: dict[str, dict[str, str]] = {}
    jobs: dict[str, dict[str, str]] = {}
    benchmarks: list[str] = []
    for v in views:
        row = f"{v.cell.model}/{v.cell.format}"
        mark = STATE_MARK[v.status]
        if v.adaptive is not None:  # an adaptive cell says how far it got: "done 80/120 early", "partial 40/120"
            a = v.adaptive
            mark += f" {a.documents}/{a.total}" + (" early" if a.stopped_early else "")
        rows.setdefault(row, {})[v.cell.benchmark] = mark
        if v.cell.benchmark not in benchmarks:
            benchmarks.append(v.cell.benchmark)
        if v.job_id is not None:
            row_jobs = jobs.setdefault(row, {})
            if v.job_state is not None or v.job_id not in row_jobs:
                row_jobs[v.job_id] = v.job_state.value if v.job_state is not None else "?"
    header = ["model/format", *benchmarks] + (["slurm job"] if jobs else [])
    table = []
    for row, by_bench in rows.items():
        line = [row, *[by_bench.get(b, "") for b in benchmarks]]
        if jobs:
            line.append(", ".join(f"{j} {s}" for j, s in jobs.get(row, {}).items()) or "-")
        table.append(line)
    counts: dict[str, int] = {}
    for v in views:
        counts[v.status.value] = counts.get(v.status.value, 0) + 1
    summary = f"{len(views)} cell(s): " + ", ".join(f"{n} {s}" for s, n in counts.items())
    return text_table(header, table) + "\n" + summary + render_adaptive(views)


def render_adaptive(views: Sequence[CellView]) -> str:
    """Adaptive cells: each one's spending and decision, and the sweep's variant documents and seconds against
    the full runs ("" when the grid has none)."""
    cells = [v for v in views if v.adaptive is not None]
    if not cells:
        return ""
    lines = [
        f"\nadaptive {v.cell.model}/{v.cell.format}/{v.cell.benchmark}: {v.adaptive.line()}"
        for v in cells
        if v.adaptive
    ]
    docs = sum(v.adaptive.documents for v in cells if v.adaptive)
    total = sum(v.adaptive.total for v in cells if v.adaptive)
    secs = sum(v.adaptive.seconds for v in cells if v.adaptive)
    full = sum(v.adaptive.baseline_seconds for v in cells if v.adaptive)
    lines.append(
        f"\nadaptive cells spent {docs:,} of {total:,} documents ({100 * docs / max(total, 1):.0f}%), "
        f"{secs:.0f}s against ~{full:.0f}s for full runs (the baselines' times)"
    )
    return "".join(lines)


def render_failures(views: Sequence[CellView]) -> str:
    """Each failed cell with its error, its log and the command that re-runs it."""
    blocks = []
    for v in views:
        if v.status is not CellStatus.FAILED:
            continue
        c = v.cell
        blocks.append(
            f"FAILED {c.key}" + (f" (Slurm job {v.job_id})" if v.job_id else "") + "\n"
            f"  error: {v.error}\n  log:   {v.log_path}\n"
            f"  rerun: evalkit run model={c.model} format={c.format} benchmark={c.benchmark}"
            "  (or the same sweep again: it runs missing and failed cells)"
        )
    return "\n\n".join(blocks)


def render_plan(plans: Sequence[JobPlan]) -> str:
    """What a sweep is about to do: per job, its cells and which are already done."""
    rows = []
    total = pending = 0
    for plan in plans:
        cells = plan.cells
        todo = {c.key for c in plan.pending}
        states = [r.state.value for r in plan.records]
        total += len(cells)
        pending += len(todo)
        rows.append(
            [
                plan.name,
                ", ".join(c.benchmark for c in cells if c.key in todo) or "(all done)",
                ", ".join(f"{c.benchmark}={s}" for c, s in zip(cells, states, strict=True)),
            ]
        )
    head = f"sweep: {len(plans)} job(s), {total} cell(s); {total - pending} complete, {pending} to run"
    if pending == 0:
        head += " - nothing to do (every cell is complete; use `evalkit run ...` to re-run one)"
    columns = ["job (model.format)", "to run", "store"]
    cpu_jobs = [p.cfg for p in plans if p.cfg.server.device == "cpu"]
    if cpu_jobs:  # how this CPU would serve each job's checkpoint (evalkit doctor shows the same)
        from evalkit.serve.cpu_support import plan_support, read_cpuinfo, serving_dtype

        cpu = read_cpuinfo()
        head += f"\nthis CPU: {serving_dtype(cpu_jobs[0].server.dtype, cpu).reason}"
        columns.append("serving on this CPU")
        for row, plan in zip(rows, plans, strict=True):
            cfg = plan.cfg
            scheme = str(cfg.format.recipe.scheme) if cfg.format.recipe is not None else None
            s = plan_support(scheme, cfg.server.dtype, cfg.server.env, cpu) if cfg.server.device == "cpu" else None
            row.append("" if s is None else f"{s.how}: {s.detail}" + (f" (fix: {s.fix})" if s.fix else ""))
    from evalkit.pipeline.adaptive_estimate import render_estimates

    adaptive = render_estimates(plans)
    return head + "\n" + text_table(columns, rows) + ("\n" + adaptive if adaptive else "")
