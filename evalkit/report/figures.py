"""The report's figures: Altair (Vega-Lite) charts rendered to SVG text by vl-convert, in process and offline.

Each function takes a table and returns one `<svg>` element, ready to inline in the page."""

from __future__ import annotations

import altair as alt
import pandas as pd
import vl_convert as vlc

from evalkit.compare.verdict import Verdict

VERDICT_COLOURS = {
    Verdict.RECOVERED.value: "#4c9a5b",
    Verdict.WITHIN_MARGIN.value: "#9cc46a",
    Verdict.INCONCLUSIVE.value: "#e0b341",
    Verdict.DEGRADED.value: "#c8553d",
}


PADDING = {"left": 40, "right": 20, "top": 8, "bottom": 8}
"""Room around the plot: the browser's fonts can be wider than those vl-convert measured the labels with."""


def to_svg(chart: alt.TopLevelMixin) -> str:
    svg: str = vlc.vegalite_to_svg(chart.properties(padding=PADDING).to_json())
    return svg


def recovery_heatmap(suites: pd.DataFrame) -> str:
    """Rows model / suite, columns format; colour = verdict; text = recovery and its CI."""
    df = suites.assign(
        row=suites["model"].astype(str) + " / " + suites["suite"].astype(str),
        label=[
            f"{r:.1f}% [{lo:.1f}, {hi:.1f}]" if pd.notna(r) else "no ratio (baseline 0)"
            for r, lo, hi in zip(suites["recovery"], suites["recovery_lo"], suites["recovery_hi"], strict=True)
        ],
    )
    base = alt.Chart(df).encode(
        x=alt.X("format:N", title="format", axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("row:N", title=None),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(
            "verdict:N",
            scale=alt.Scale(domain=list(VERDICT_COLOURS), range=list(VERDICT_COLOURS.values())),
            legend=alt.Legend(title="verdict", orient="bottom"),
        ),
        tooltip=["model", "suite", "format", "recovery", "recovery_lo", "recovery_hi", "verdict"],
    )
    text = base.mark_text(fontSize=11).encode(text="label:N")
    return to_svg((cells + text).properties(width=max(160, 150 * df["format"].nunique()), height={"step": 34}))


def forest(tasks: pd.DataFrame, margin: float | None) -> str:
    """Per task, each format's paired difference vs the baseline with its CI; a line at 0 and at -margin."""
    base = alt.Chart(tasks).encode(
        y=alt.Y("task:N", title=None, sort=None),
        yOffset=alt.YOffset("format:N"),
        color=alt.Color("format:N", legend=alt.Legend(orient="bottom")),
    )
    ci = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("diff_lo:Q", title="difference vs baseline (points, 95% CI)"), x2="diff_hi:Q"
    )
    point = base.mark_point(filled=True, size=40).encode(
        x="diff:Q", tooltip=["task", "format", "diff", "diff_lo", "diff_hi", "flips_down", "flips_up"]
    )
    lines = [alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#444").encode(x="x:Q")]
    if margin is not None:
        lines.append(
            alt.Chart(pd.DataFrame({"x": [-margin]})).mark_rule(color="#c8553d", strokeDash=[4, 3]).encode(x="x:Q")
        )
    step = 10 * max(1, tasks["format"].nunique()) + 8
    return to_svg(alt.layer(*lines, ci, point).properties(width=520, height={"step": step}))


def latency_throughput(perf: pd.DataFrame, throughput: str, latency: str, group: str | None) -> str:
    """Latency against throughput, one line per format (and panel per use case when `group` names a column)."""
    chart = (
        alt.Chart(perf)
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{throughput}:Q", title=throughput),
            y=alt.Y(f"{latency}:Q", title=latency),
            color=alt.Color("format:N", legend=alt.Legend(orient="bottom")),
            order=alt.Order(f"{throughput}:Q"),
            tooltip=list(perf.columns[:8]),
        )
        .properties(width=300, height=220)
    )
    return to_svg(chart.facet(column=alt.Column(f"{group}:N")) if group else chart)
