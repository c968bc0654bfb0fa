"""Rendering tables for people: recovery tables and the sweep status matrix. Pure functions returning strings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from evalkit.status import CellStatus, CellView


def _fmt(x: object, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align_right: Sequence[bool] | None = None
) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    right = list(align_right) if align_right is not None else [False] * len(header)

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


OVERRIDE_MARK = "*"
OVERRIDE_NOTE = (
    "* ran on local data overrides (demo: a handful of shipped documents per task, so the number only shows the "
    "pipeline works; or local copies of the datasets): see data_sources in results/scores"
)


def render_recovery(table: pd.DataFrame, baseline_format: str) -> str:
    """Per model and section: suites as rows, formats as columns, "score (recovery%)" in each cell; a cell that ran
    on local data overrides is marked "*", with a footnote."""
    if table.empty:
        return "No successful results to aggregate."
    blocks = []
    marked = False
    for model, mgroup in table.groupby("model", sort=False):
        formats = [baseline_format, *sorted(f for f in mgroup["format"].unique() if f != baseline_format)]
        for section, sgroup in mgroup.groupby("section", sort=False):
            rows = []
            for suite, g in sgroup.groupby("suite", sort=False):
                by_fmt = g.set_index("format")
                row: list[object] = [suite]
                for fmt in formats:
                    if fmt not in by_fmt.index:
                        row.append("-")
                        continue
                    r = by_fmt.loc[fmt]
                    cell = _fmt(float(r["score"]))
                    if fmt != baseline_format:
                        cell += f" ({_fmt(float(r['recovery']))}%)"
                    if bool(r.get("data_overridden", False)):
                        cell += OVERRIDE_MARK
                        marked = True
                    row.append(cell)
                rows.append(row)
            title = f"{model} - {section}: average score (recovery vs {baseline_format})"
            blocks.append(title + "\n" + text_table(["suite", *formats], rows, [False] + [True] * len(formats)))
    if marked:
        blocks.append(OVERRIDE_NOTE)
    return "\n\n".join(blocks)


STATE_MARK = {
    "done": "done",
    "failed": "FAILED",
    "stale": "stale",
    "missing": "-",
    "running": "running",
    "queued": "queued",
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
        rows.setdefault(row, {})[v.cell.benchmark] = STATE_MARK[v.status.value]
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
    return text_table(header, table) + "\n" + summary


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


def render_plan(plans: Sequence[object]) -> str:
    """What a sweep is about to do: per job, its cells and which are already done."""
    rows = []
    total = pending = 0
    for plan in plans:
        cells = plan.cells  # type: ignore[attr-defined]
        todo = {c.key for c in plan.pending}  # type: ignore[attr-defined]
        states = [r.state.value for r in plan.records]  # type: ignore[attr-defined]
        total += len(cells)
        pending += len(todo)
        rows.append(
            [
                plan.name,  # type: ignore[attr-defined]
                ", ".join(c.benchmark for c in cells if c.key in todo) or "(all done)",
                ", ".join(f"{c.benchmark}={s}" for c, s in zip(cells, states, strict=True)),
            ]
        )
    head = f"sweep: {len(plans)} job(s), {total} cell(s); {total - pending} complete, {pending} to run"
    if pending == 0:
        head += " - nothing to do (every cell is complete; use `evalkit run ...` to re-run one)"
    return head + "\n" + text_table(["job (model.format)", "to run", "store"], rows)
