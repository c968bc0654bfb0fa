"""One pure function per section of the report: ReportInputs -> HTML body. A section whose data is absent returns
the one line that says so (`html.absent`), never nothing."""

from __future__ import annotations

import pandas as pd

from evalkit.compare.table import SUITE
from evalkit.core.datasources import parse_sources
from evalkit.report import figures
from evalkit.report.html import absent, esc, figure, notes, table
from evalkit.report.inputs import ReportInputs


def _suites(inp: ReportInputs) -> pd.DataFrame | None:
    c = inp.comparisons
    return None if c is None else c[c["task"] == SUITE]


def recovery(inp: ReportInputs) -> str:
    suites = _suites(inp)
    if suites is None or suites.empty:
        return absent(f"No comparison vs the {inp.settings.baseline} baseline: {inp.compare_error or 'no rows'}.")
    judged = suites[suites["verdict"].notna()]  # baseline replicates have no verdict: they are the noise floor
    if judged.empty:
        return absent("No format other than baseline replicates was compared: see the noise floor.")
    svg = figures.recovery_heatmap(judged)
    caption = (
        f"Recovery (variant / {inp.settings.baseline} x 100) per model / suite and format, with its 95% CI "
        f"(paired, clustered by document); colour: verdict at margin {inp.settings.margin}, read from the interval at "
        "the family's level (README, 'Comparing formats'). need: documents for a recovered call at the measured "
        "disagreement."
    )
    view = suites.assign(
        diff_ci=[
            f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            for d, lo, hi in zip(suites["diff"], suites["diff_lo"], suites["diff_hi"], strict=True)
        ]
    )
    cols = [
        "model",
        "suite",
        "format",
        "n_docs",
        "baseline",
        "variant",
        "diff_ci",
        "recovery",
        "docs_needed",
        "verdict",
    ]
    return figure(svg, caption) + table(view, cols, "verdicts") + notes(inp.compare_notes)


def tasks(inp: ReportInputs) -> str:
    c = inp.comparisons
    rows = None if c is None else c[c["task"] != SUITE]
    if rows is None or rows.empty:
        return absent(f"No per-task comparison: {inp.compare_error or 'the comparison has no task rows'}.")
    parts = []
    for (model, suite), grp in rows.groupby(["model", "suite"], sort=True):
        margin = float(grp["margin_points"].median()) if grp["margin_points"].notna().any() else None
        parts.append(f"<h3>{esc(model)} / {esc(suite)}</h3>")
        parts.append(
            figure(
                figures.forest(grp, margin),
                "Paired difference vs the baseline per task (points; bar: 95% CI; dashed: -margin).",
            )
        )
        parts.append(
            table(
                grp,
                ["task", "format", "n_docs", "diff", "flips_down", "flips_up", "docs_needed", "verdict"],
                "flips",
            )
        )
    parts.append(
        '<p class="note">flips_down: right with the baseline, wrong with the format; flips_up: the reverse.</p>'
    )
    return "".join(parts)


def _named(tables: dict[str, pd.DataFrame], *words: str) -> dict[str, pd.DataFrame]:
    return {n: t for n, t in tables.items() if any(w in n.lower() for w in words)}


def divergence(inp: ReportInputs) -> str:
    parts = []
    suites = _suites(inp)
    if suites is not None and suites["n_choice_docs"].gt(0).any():
        has = suites[suites["n_choice_docs"] > 0]
        parts.append("<h3>Choice divergence (multiple-choice log-likelihoods)</h3>")
        parts.append(table(has, ["model", "suite", "format", "n_choice_docs", "kl_mean", "top1_agreement"]))
    else:
        parts.append(absent("Choice KL / top-1 agreement: not computed (no multiple-choice log-likelihood samples)."))
    for label, words, hint in (
        ("Token divergence", ("diverg", "token"), "the token-divergence cell"),
        ("Text similarity", ("similar",), "text similarity"),
    ):
        found = _named(inp.compare_tables, *words)
        if not found:
            parts.append(absent(f"{label}: not computed (no results/compare table from {hint})."))
        for name, t in found.items():
            parts.append(f"<h3>{esc(label)} <small>({esc(name)})</small></h3>" + table(t))
    return "".join(parts)


THROUGHPUT_WORDS = ("output_tokens_per_s", "throughput", "tok_s", "tokens_per_s", "requests_per_s", "rps", "qps")
LATENCY_WORDS = ("e2el_p50", "latency", "e2el", "ttft_p50", "ttft", "itl", "tpot")


def _column(df: pd.DataFrame, words: tuple[str, ...]) -> str | None:
    """The first numeric column naming one of `words`, in the order of `words` (most telling first)."""
    for w in words:
        for c in df.columns:
            if w in str(c).lower() and pd.api.types.is_numeric_dtype(df[c]):
                return str(c)
    return None


def _curve_points(t: pd.DataFrame, thr: str, lat: str, group: str | None) -> pd.DataFrame:
    """One point per format (x use case) and load level: repeated runs of a level are averaged."""
    keys = ["format"] + [k for k in (group, "mode", "rate", "concurrency") if k and k in t.columns]
    return t.groupby(keys, dropna=False, sort=True)[[thr, lat]].mean().reset_index()


def performance(inp: ReportInputs) -> str:
    if not inp.perf_tables:
        return absent("Performance: absent (no results/perf table; `evalkit perf` writes it).")
    parts = []
    for name, t in inp.perf_tables.items():
        parts.append(f"<h3>{esc(name)}</h3>")
        thr, lat = _column(t, THROUGHPUT_WORDS), _column(t, LATENCY_WORDS)
        if "format" in t.columns and thr and lat:
            group = next((g for g in ("use_case", "profile", "scenario") if g in t.columns), None)
            caption = f"{lat} against {thr}, one line per format" + (f", one panel per {group}" if group else "")
            parts.append(
                figure(figures.latency_throughput(_curve_points(t, thr, lat, group), thr, lat, group), caption)
            )
        parts.append(table(t))
    return "".join(parts)


def noise_floor(inp: ReportInputs) -> str:
    parts = []
    suites = _suites(inp)
    floor = [c for c in (suites.columns if suites is not None else []) if "floor" in c or c == "n_replicates"]
    if suites is not None and "n_replicates" in suites.columns:
        # every comparison row carries the floor columns; only rows measured against replicates have a floor
        measured = suites[suites["n_replicates"].fillna(0) > 0]
        if not measured.empty:
            parts.append(table(measured, ["model", "suite", "format", "diff", *floor]))
    elif suites is not None and floor and suites[floor].notna().any().any():
        parts.append(table(suites[suites[floor].notna().any(axis=1)], ["model", "suite", "format", "diff", *floor]))
    parts += [f"<h3>{esc(n)}</h3>" + table(t) for n, t in _named(inp.compare_tables, "noise", "replicate").items()]
    return "".join(parts) or absent("Noise floor: absent (no baseline replicates were compared).")


def failures(inp: ReportInputs) -> str:
    failed = inp.scores[inp.scores["status"] == "failed"]
    stale = (
        '<p class="note">Stale cells depend on the current configuration: `evalkit status [overrides]` lists them.</p>'
    )
    if failed.empty:
        return absent("No failed cells in the scores table.") + stale
    view = failed.sort_values(["model", "format", "benchmark"])
    view = view.assign(
        rerun=[
            f"evalkit run model={m} format={f} benchmark={b}"
            for m, f, b in zip(view["model"], view["format"], view["benchmark"], strict=True)
        ]
    )
    cols = ["model", "format", "benchmark", "error", "log_path", "finished_at", "rerun"]
    return table(view, cols, "failures") + stale


def provenance(inp: ReportInputs) -> str:
    s = inp.scores
    if s.empty:
        return absent("Provenance: the scores table is empty.")
    cells = s.drop_duplicates(["model", "format", "benchmark"])
    versions = (
        cells.groupby(["evalkit_version", "evalkit_commit", "lm_eval_version", "vllm_version"], dropna=False)
        .size()
        .reset_index(name="cells")
    )
    ckpts = cells.drop_duplicates(["model", "format"])[["model", "format", "checkpoint", "checkpoint_path"]]
    sources = []
    for r in cells.to_dict("records"):
        for src in parse_sources(r["data_sources"]):
            sources.append(
                {
                    "benchmark": r["benchmark"],
                    "dataset": src.dataset,
                    "split": src.split,
                    "revision / sha256": src.hub_revision or (src.sha256 or "")[:16],
                    "path": src.path,
                    "rows": src.rows,
                    "overridden": r["data_overridden"],
                }
            )
    data = (
        table(pd.DataFrame(sources).drop_duplicates())
        if sources
        else absent("Data sources: not recorded (results written before the data_sources column).")
    )
    hw = [
        t[[c for c in ("model", "format", "hardware", "hardware_kind") if c in t.columns]].drop_duplicates()
        for t in inp.perf_tables.values()
        if "hardware" in t.columns
    ]
    hardware = (
        "".join(table(t) for t in hw)
        if hw
        else absent(f"Hardware of the runs: not recorded in the results. This report was written on {inp.host}.")
    )
    return (
        "<h3>Versions</h3>"
        + table(versions)
        + "<h3>Checkpoints</h3>"
        + table(ckpts)
        + "<h3>Data sources</h3>"
        + data
        + "<h3>Hardware</h3>"
        + hardware
    )
