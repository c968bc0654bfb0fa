"""Rendering tables for people: recovery tables and the sweep status matrix. Pure functions returning strings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd


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


def render_recovery(table: pd.DataFrame, baseline_format: str) -> str:
    """Per model and section: suites as rows, formats as columns, "score (recovery%)" in each cell."""
    if table.empty:
        return "No successful results to aggregate."
    blocks = []
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
                    row.append(cell)
                rows.append(row)
            title = f"{model} - {section}: average score (recovery vs {baseline_format})"
            blocks.append(title + "\n" + text_table(["suite", *formats], rows, [False] + [True] * len(formats)))
    return "\n\n".join(blocks)


STATE_MARK = {
    "done": "done",
    "failed": "FAILED",
    "stale": "stale",
    "missing": "-",
    "running": "running",
    "queued": "queued",
}


def render_status(matrix: pd.DataFrame) -> str:
    """`matrix`: index = "model/format", columns = benchmarks, values = state names."""
    header = ["model/format", *[str(c) for c in matrix.columns]]
    rows = [
        [idx, *[STATE_MARK.get(str(v), str(v)) for v in row]]
        for idx, row in zip(matrix.index, matrix.values, strict=True)
    ]
    return text_table(header, rows)


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
                plan.name,
                ", ".join(c.benchmark for c in cells if c.key in todo) or "(all done)",  # type: ignore[attr-defined]
                ", ".join(f"{c.benchmark}={s}" for c, s in zip(cells, states, strict=True)),
            ]
        )
    head = f"sweep: {len(plans)} job(s), {total} cell(s); {total - pending} complete, {pending} to run"
    if pending == 0:
        head += " - nothing to do (every cell is complete; use `evalkit run ...` to re-run one)"
    return head + "\n" + text_table(["job (model.format)", "to run", "store"], rows)
