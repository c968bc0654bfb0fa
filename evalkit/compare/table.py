"""The `comparisons` table: every variant vs its baseline per (model, format, suite), with a row per task below
it, and its terminal rendering. The only module here that knows the whole flow; the statistics are in paired.py."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from evalkit.benchmarks import report_sections
from evalkit.compare import divergence
from evalkit.compare.documents import document_scores
from evalkit.compare.floor import is_replicate, with_floor
from evalkit.compare.frame import as_table
from evalkit.compare.multiple import Method, adjust
from evalkit.compare.paired import POWER, Documents, PairedResult, documents_needed, interval, paired, shared_documents
from evalkit.compare.pairing import drop_unscored, pair
from evalkit.compare.policy import NO_CI, Family, Policy
from evalkit.compare.verdict import Margin, Verdict, decide
from evalkit.core.errors import CompareError, StoreError
from evalkit.core.formats import BASELINE_FORMAT
from evalkit.results.aggregate import TASK_SUITES, recovery_table

PAIR_COLUMNS = [
    "task",
    "cluster",
    "doc_id",
    "prompt_hash",
    "raw",
    "y",
    "w",
    "slope",
    "row",
    "mc",
    "measure",
    "continuous",
]

SUITE = "*"
"""`task` of a suite's own row."""

VARIANT, REPLICATE = "variant", "replicate"
"""`role` of a row: a format vs its baseline, or a baseline replicate (format `<baseline>~r<i>`) measuring the noise
floor (floor.py)."""


@dataclass(frozen=True)
class CompareSettings:
    baseline: str = BASELINE_FORMAT
    margin: Margin = field(default_factory=Margin)
    method: Method = "holm"
    """Adjustment of the two-sided p of "no difference" within the family (information; verdicts read the
    family's intervals)."""
    seed: int = 0
    alpha: float = 0.05
    """Two-sided level of the shown intervals is 1 - alpha; each verdict reads its family's interval."""
    family: Family = "model_format"
    """Bonferroni over the claims (suite and task rows) of one model x format, or per claim (policy.py)."""

    @classmethod
    def of(
        cls, policy: Policy, baseline: str = BASELINE_FORMAT, margin: Margin | None = None, **kw: Any
    ) -> CompareSettings:
        return cls(baseline, margin or policy.margin, alpha=policy.alpha, family=policy.family, **kw)

    subsets: frozenset[tuple[str, str, str]] = frozenset()
    """(model, format, suite) of adaptive cells stopped early (sequential.adaptive_subsets): their documents are a
    subset of the baseline's, which is paired on those documents only."""


def compare(
    samples: pa.Table | pd.DataFrame | None, scores: pd.DataFrame, settings: CompareSettings
) -> tuple[pd.DataFrame, list[str]]:
    """The comparisons table and notes (what was left out and why). `samples`: Arrow (`frame.read_samples`, fast)
    or the DataFrame `ResultsStore.read_samples` returns; None (or empty) where the results hold scores only: then
    every line is a score-only line (recovery, no CI)."""
    notes: list[str] = []
    rows: list[dict[str, object]] = []
    if samples is not None and len(samples):
        rows = _sampled_rows(as_table(samples), scores, settings, notes)
    rows += _score_only_rows(scores, settings, {(r["model"], r["format"], r["suite"]) for r in rows}, notes)
    if not rows:
        raise CompareError(
            f"nothing to compare: no model has both {settings.baseline!r} and another format",
            hint="check --baseline and that the baseline cells completed (`evalkit status`)",
        )
    return _decide(pd.DataFrame(rows), settings), notes


def _sampled_rows(
    table: pa.Table, scores: pd.DataFrame, settings: CompareSettings, notes: list[str]
) -> list[dict[str, object]]:
    try:
        docs, doc_notes = document_scores(table, scores)
    except CompareError as err:
        notes.append(err.message)
        return []
    notes.extend(doc_notes)
    primaries = _primary_tasks(scores)
    choices = divergence.ChoiceCache(table.column("response"))
    rows: list[dict[str, object]] = []
    # only the columns pairing reads: each group below is a copy of its rows
    docs = docs[["model", "suite", "format", *PAIR_COLUMNS]]
    for (model, suite), grp in docs.groupby(["model", "suite"], sort=True, observed=True):
        base = grp[grp["format"] == settings.baseline]
        if base.empty:
            notes.append(f"{model} / {suite}: no {settings.baseline} baseline documents; not compared")
            continue
        for fmt, var in grp[grp["format"] != settings.baseline].groupby("format", sort=True, observed=True):
            where = f"{model} / {suite}: {fmt} vs {settings.baseline}"
            of = base
            if (model, fmt, suite) in settings.subsets:  # stopped early: the baseline on the documents it ran
                ran = pd.MultiIndex.from_frame(var[["task", "doc_id"]])
                of = base[pd.MultiIndex.from_frame(base[["task", "doc_id"]]).isin(ran)]
            paired_, unscored = drop_unscored(pair(of[PAIR_COLUMNS], var[PAIR_COLUMNS], where))
            notes.extend(
                f"{where}: {task}: {n} documents without a score on one side (arena: every judgment of the "
                "question failed) left out on both sides"
                for task, n in unscored.items()
            )
            if paired_.empty:
                notes.append(f"{where}: no document scored on both sides; not compared")
                continue
            rows.extend(_suite_rows(str(model), str(fmt), str(suite), paired_, choices, primaries, settings, notes))
    return rows


def _suite_rows(
    model: str,
    fmt: str,
    suite: str,
    p: pd.DataFrame,
    choices: divergence.ChoiceCache,
    primaries: dict[tuple[str, str, str], set[str]],
    settings: CompareSettings,
    notes: list[str],
) -> list[dict[str, object]]:
    """The suite row and its task rows of one (model, format, suite). Per-task work reads contiguous slices of the
    rows sorted by task once (no boolean mask of the whole frame per task: suites have dozens of tasks and millions
    of rows)."""
    p = p.rename(columns={"w_b": "w"}).reset_index(drop=True)
    task_code, uniq = pd.factorize(p["task"], sort=True)  # categorical codes: no string per row
    task_names = pd.Index([str(t) for t in uniq])
    m = len(task_names)
    # stable: a task's rows keep their order, so its sums are unchanged; 16-bit codes sort by radix, not timsort
    order = np.argsort(task_code.astype(np.int16) if m < 2**15 else task_code, kind="stable")
    bounds = np.searchsorted(task_code[order], np.arange(m + 1))
    first = order[bounds[:-1]]  # each task's first row
    raw = np.concatenate([p["raw_b"].to_numpy(float), p["raw_v"].to_numpy(float)])
    code2 = np.concatenate([task_code, task_code])
    # right/wrong: every value of the task, either side, in {0, 1} or every one in {0, 100}
    outside_01 = np.bincount(code2, ~np.isin(raw, (0.0, 1.0)), minlength=m)
    outside_0100 = np.bincount(code2, ~np.isin(raw, (0.0, 100.0)), minlength=m)
    continuous = p["continuous_b"].to_numpy()[first].astype(bool)
    binary = ~continuous & ((outside_01 == 0) | (outside_0100 == 0))
    measure_b = p["measure_b"].to_numpy(object)[first]
    measures = [v if isinstance(v, str) else None for v in measure_b]  # NaN: the primary value is compared
    doc = shared_documents(p.assign(task=pd.Categorical.from_codes(task_code, task_names)))
    y_b, y_v = p["y_b"].to_numpy(float), p["y_v"].to_numpy(float)
    percent = bool(np.nanmax(np.abs(np.concatenate([y_b, y_v]))) <= 100) if len(p) else True
    span = max(float(np.nanmax(np.abs(np.concatenate([y_b, y_v])))), 1.0)
    unit = 100.0 * p["slope_b"].to_numpy(float) if percent else np.full(len(p), span)
    docs = Documents(
        task=task_code,
        doc=doc,
        stratum=pd.factorize(p["cluster"])[0],
        weight=p["w"].to_numpy(float),
        y_b=y_b,
        y_v=y_v,
        unit=unit,
        binary=binary,
    )
    shared = _sharing(task_code, task_names, doc)
    if shared:
        notes.append(f"{model} / {suite} / {fmt}: {shared}; each document is resampled once, counted once")
    expected = primaries.get((model, fmt, suite), set()) & primaries.get((model, settings.baseline, suite), set())
    covered = len(set(task_names) & expected) if expected else len(task_names)
    n_expected = max(len(expected), covered)
    coverage = f"{covered}/{n_expected}"
    if covered < n_expected:
        missing = sorted(expected - set(task_names))
        notes.append(
            f"{model} / {suite} / {fmt}: samples for {covered} of its {n_expected} tasks (none for {missing}): the "
            "suite line's interval is of those tasks only; aggregate shows the suite's recovery without it"
        )
    div_all = choices.divergence(p["row_b"].to_numpy(), p["row_v"].to_numpy(), p["mc_b"].to_numpy())
    out = [
        _row(model, fmt, suite, SUITE, paired(docs), div_all, settings)
        | {"measure": "; ".join(sorted({m for m in measures if m})) or None, "tasks_compared": coverage}
        | {"shared_documents": shared or None}
    ]
    by_task = Documents(
        task=task_code[order],
        doc=doc[order],
        stratum=docs.stratum[order],
        weight=docs.weight[order],
        y_b=y_b[order],
        y_v=y_v[order],
        unit=unit[order],
        binary=binary,
    )
    for i, name in enumerate(task_names):
        at = slice(bounds[i], bounds[i + 1])
        task_docs = Documents(**{f: getattr(by_task, f)[at] for f in _ROW_FIELDS}, binary=binary)
        div = div_all.iloc[order[at]].reset_index(drop=True) if len(div_all) == len(p) else div_all
        out.append(
            _row(model, fmt, suite, str(name), paired(task_docs), div, settings)
            | {"measure": measures[i], "tasks_compared": None, "shared_documents": None}
        )
    return out


_ROW_FIELDS = ("task", "doc", "stratum", "weight", "y_b", "y_v", "unit")
"""Documents' per-row arrays (`binary` is per task)."""


def _sharing(task_code: np.ndarray, task_names: pd.Index, doc: np.ndarray) -> str:
    """Which tasks share documents, and how many: "humaneval, humaneval_plus share 164 documents". Vectorised: a
    per-document Python call would cost minutes on millions of documents. `task_code` indexes `task_names`."""
    doc = np.asarray(doc, np.int64)
    if not len(doc) or np.bincount(doc).max() <= 1:  # one row per document (the usual case): nothing is shared
        return ""
    nt = max(len(task_names), 1)
    # distinct (document, task) pairs as one int64 key: a 1-D unique, not the slow np.unique(axis=1)
    key = np.unique(doc * nt + np.asarray(task_code, np.int64))
    pair_doc, pair_task = key // nt, key % nt
    d_code, d_inv = np.unique(pair_doc, return_inverse=True)
    multi = np.bincount(d_inv) > 1
    if not multi.any():
        return ""
    keep = multi[d_inv]
    # a document's set of tasks as a bit mask (suites have few tasks; beyond 62 the sharing is not summarised)
    if len(task_names) > 62:
        return f"{int(multi.sum())} documents are shared by several tasks"
    mask = np.zeros(len(d_code), np.int64)
    np.add.at(mask, d_inv[keep], np.left_shift(1, pair_task[keep]))
    sets, counts = np.unique(mask[multi], return_counts=True)
    by_name = sorted(range(len(task_names)), key=lambda i: str(task_names[i]))
    names = [", ".join(str(task_names[i]) for i in by_name if m >> i & 1) for m in sets]
    return "; ".join(f"{n} share {c} documents" for n, c in sorted(zip(names, counts, strict=True)))


def _primary_tasks(scores: pd.DataFrame) -> dict[tuple[str, str, str], set[str]]:
    ok = scores[(scores["status"] == "ok") & scores["is_primary"].astype(bool)]
    return {
        (str(m), str(f), str(s)): set(g.astype(str))
        for (m, f, s), g in ok.groupby(["model", "format", "suite"], observed=True)["task"]
    }


def _score_only_rows(
    scores: pd.DataFrame, settings: CompareSettings, sampled: set[tuple[object, object, object]], notes: list[str]
) -> list[dict[str, object]]:
    """Recovery lines of suites the samples do not cover (hand-entered or score-only cells): the table's recovery,
    no interval, no verdict; said on their own line, never taken from (or removing) another line's interval."""
    try:
        table = recovery_table(scores, settings.baseline, report_sections())
    except StoreError as err:
        notes.append(f"score-only lines left out: {err.message}")
        return []
    table = table[(table["format"] != settings.baseline) & table["baseline_score"].notna()]
    out = []
    for r in table.to_dict("records"):
        cell_suite = next((su for (su, _), line in TASK_SUITES.items() if line == r["suite"]), r["suite"])
        if (r["model"], r["format"], cell_suite) in sampled:  # HumanEval+'s line is a task row of its cell
            continue
        out.append(
            {
                "model": r["model"],
                "format": r["format"],
                "baseline_format": settings.baseline,
                "suite": r["suite"],
                "task": SUITE,
                "baseline": r["baseline_score"],
                "variant": r["score"],
                "diff": r["score"] - r["baseline_score"],
                "recovery": r["recovery"],
                "test": NO_CI,
                "margin_points": settings.margin.points(float(r["baseline_score"])),
                "tasks_compared": f"0/{r['n_tasks']}",
            }
        )
    if out:
        notes.append(
            f"{len(out)} line(s) from scores alone (no per-document samples): recovery shown, no CI, no verdict"
        )
    return out


def _decide(table: pd.DataFrame, settings: CompareSettings) -> pd.DataFrame:
    """Intervals, family, verdicts and planning for every row: the run-to-run variance from baseline replicates
    (floor.py) widens each variant's interval; each verdict reads its family's interval (`decide`)."""
    paired_cols = ("n_docs", "se", "df", "p_value", "flips_down", "flips_up", "per_doc_sd", "flip_worth", "moved")
    for col in (*paired_cols, "max_abs_diff"):
        if col not in table:
            table[col] = np.nan
    table["role"] = np.where(
        table["format"].map(lambda f: is_replicate(str(f), settings.baseline)).astype(bool), REPLICATE, VARIANT
    )
    replicate = table["role"] == REPLICATE
    table = with_floor(table, replicate)
    se = np.sqrt(table["se"].to_numpy(float) ** 2 + np.where(replicate, 0.0, table["run_var"].fillna(0.0)))
    table["se_total"] = se
    level = 1 - settings.alpha
    worth, moved = table["flip_worth"].to_numpy(float), table["moved"].to_numpy(float)
    bound = table["max_abs_diff"].to_numpy(float)  # 5 documents cannot move a score by more than they are worth
    lo, hi = interval(table["diff"].to_numpy(float), se, table["df"].to_numpy(float), level, worth, moved)
    lo, hi = np.fmax(lo, -bound), np.fmin(hi, bound)
    table["diff_lo"], table["diff_hi"] = lo, hi
    has_ci = np.isfinite(se)
    # the family: every claim (suite and task rows with an interval) of one model x format
    family_size = (
        table[has_ci].groupby(["model", "format"])["task"].transform("size").reindex(table.index)
        if settings.family == "model_format"
        else pd.Series(1.0, index=table.index)
    )
    table["family_size"] = family_size.fillna(1).astype(int)
    claim_level = 1 - settings.alpha / table["family_size"].to_numpy(float)
    c_lo, c_hi = interval(table["diff"].to_numpy(float), se, table["df"].to_numpy(float), claim_level, worth, moved)
    c_lo, c_hi = np.fmax(c_lo, -bound), np.fmin(c_hi, bound)
    table["claim_lo"], table["claim_hi"] = c_lo, c_hi
    base = table["baseline"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = base > 0
        table["recovery"] = np.where(table["recovery"].notna(), table["recovery"], table["variant"] / base * 100)
        # the baseline's own sampling error is second order for the ratio: the paired difference carries it
        table["recovery_lo"] = np.where(ok, (base + lo) / base * 100, np.nan)
        table["recovery_hi"] = np.where(ok, (base + hi) / base * 100, np.nan)
    table["p_adjusted"] = np.nan
    for _, idx in table[has_ci & ~replicate].groupby(["model", "format"]).groups.items():
        table.loc[idx, "p_adjusted"] = adjust(table.loc[idx, "p_value"].to_numpy(), settings.method)
    table["method"] = settings.method
    q = stats.t.ppf(1 - settings.alpha / 2, table["df"].fillna(1)) + stats.norm.ppf(POWER)
    table["mde"] = q * se
    table["docs_needed"] = documents_needed(
        table["per_doc_sd"].to_numpy(float),
        table["margin_points"].to_numpy(float),
        claim_level,
        table["df"].to_numpy(float),
    )
    table["verdict"] = [
        decide(a, b, m).value if (h and r == VARIANT) else None
        for a, b, m, h, r in zip(c_lo, c_hi, table["margin_points"], has_ci, table["role"], strict=True)
    ]
    return table.reindex(columns=COLUMNS)


def verdict_of(r: Mapping[Hashable, Any]) -> str | None:
    """The verdict of a comparisons row (None: a score-only line or a replicate)."""
    v = r.get("verdict")
    return v if isinstance(v, str) else None


COLUMNS = [
    "model",
    "format",
    "role",
    "baseline_format",
    "suite",
    "task",
    "measure",
    "n_docs",
    "baseline",
    "variant",
    "diff",
    "diff_lo",
    "diff_hi",
    "recovery",
    "recovery_lo",
    "recovery_hi",
    "se",
    "se_total",
    "df",
    "claim_lo",
    "claim_hi",
    "family_size",
    "test",
    "p_value",
    "p_adjusted",
    "method",
    "flips_down",
    "flips_up",
    "mde",
    "margin_points",
    "docs_needed",
    "tasks_compared",
    "shared_documents",
    "flip_rate",
    "n_replicates",
    "floor_diff",
    "floor_flip_rate",
    "run_var",
    "beyond_floor",
    "verdict",
    "kl_mean",
    "top1_agreement",
    "n_choice_docs",
]
"""`diff_lo` / `diff_hi`: the (1 - alpha) interval shown; `claim_lo` / `claim_hi`: the interval at the family's
level (1 - alpha / family_size) that the verdict reads; `docs_needed`: documents for a `recovered` call at the
measured per-document spread (planning); `tasks_compared`: "k/K", tasks with samples of the suite's K (k < K: the
interval is of those tasks only; 0/K: a score-only line, no interval); `shared_documents`: which tasks share
documents (each counted once); `run_var`: the run-to-run variance from baseline replicates added to se.
`measure`: what the row compares where it is not the scores table's primary value (Arena-Hard: the mean
per-question win fraction, not the Bradley-Terry win rate; suites.py); None where the documents reproduce it."""


def _row(
    model: str, fmt: str, suite: str, task: str, res: PairedResult, div: pd.DataFrame, s: CompareSettings
) -> dict[str, object]:
    has = div["kl"].notna()
    return {
        "model": model,
        "format": fmt,
        "baseline_format": s.baseline,
        "suite": suite,
        "task": task,
        **asdict(res),
        "recovery": np.nan,
        "margin_points": s.margin.points(res.baseline),
        "kl_mean": float(div.loc[has, "kl"].mean()) if has.any() else np.nan,
        "top1_agreement": float(div.loc[has, "agree"].mean()) if has.any() else np.nan,
        "n_choice_docs": int(has.sum()),
    }


def degraded(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["verdict"] == Verdict.DEGRADED.value]


def _line(r: Mapping[Hashable, Any]) -> str:
    kl = f"{r['kl_mean']:6.3f}" if pd.notna(r["kl_mean"]) else f"{'':6}"
    agree = f"{r['top1_agreement']:5.2f}" if pd.notna(r["top1_agreement"]) else f"{'':5}"
    task = "" if r["task"] == SUITE else str(r["task"])
    if isinstance(r["measure"], str):  # compared on something else than the scores table's value: say on what
        task = f"{task} [{r['measure']}]".strip()
    part = r.get("tasks_compared")
    if isinstance(part, str) and part.split("/")[0] != part.split("/")[1]:
        task = f"{task} (tasks {part})".strip()  # partial: said on the line itself
    if pd.isna(r["se"]):  # a score-only line: its recovery, and nothing it cannot back
        diff, recovery, flips, n = f"{r['diff']:+.2f} (no CI)", f"{r['recovery']:.1f}% (no CI)", "-", "-"
        p_adj, mde, need = f"{'':>7}", f"{'':>5}", f"{'':>6}"
    else:
        diff = f"{r['diff']:+.2f} [{r['diff_lo']:+.2f}, {r['diff_hi']:+.2f}]"
        recovery = f"{r['recovery']:.1f}% [{r['recovery_lo']:.1f}, {r['recovery_hi']:.1f}]"
        flips, n = f"{int(r['flips_down'])}/{int(r['flips_up'])}", str(int(r["n_docs"]))
        p_adj, mde = f"{r['p_adjusted']:7.3f}", f"{r['mde']:5.1f}"
        need = f"{r['docs_needed']:>6.0f}" if np.isfinite(r["docs_needed"]) else f"{'-':>6}"
    floor = f"{r['floor_diff']:.2f}/{100 * r['floor_flip_rate']:.0f}%" if r["n_replicates"] else "-"
    verdict_ = r["verdict"] if isinstance(r["verdict"], str) else ""
    if r["role"] == REPLICATE:
        verdict_ = "(noise floor)"
    return (
        f"{str(r['model'])[:24]:<24} {str(r['suite'])[:18]:<18} {str(r['format'])[:8]:<8} {task[:30]:<30} "
        f"{n:>7} {r['baseline']:6.1f} {r['variant']:6.1f} {diff:>22} {recovery:>24} "
        f"{p_adj} {flips:>10} {mde} {need} {kl} {agree} {floor:>11}  {verdict_}"
    )


def render(table: pd.DataFrame, settings: CompareSettings, with_tasks: bool = False) -> str:
    """Text table for the terminal: one line per (model, suite, format), optionally its tasks below it."""
    view = table if with_tasks else table[table["task"] == SUITE]
    head = (
        f"{'model':<24} {'suite':<18} {'format':<8} {'task':<30} {'n':>7} {'base':>6} {'score':>6} "
        f"{'diff [95% CI]':>22} {'recovery [95% CI]':>24} {'p_adj':>7} {'flips -/+':>10} {'MDE':>5} "
        f"{'need':>6} {'KL':>6} {'agree':>5} {'floor':>11}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r in view.to_dict("records"):
        lines.append(_line(r))
    family = (
        "Bonferroni over the claims (suite and task lines) of each model x format"
        if settings.family == "model_format"
        else "none (each line on its own)"
    )
    lines.append(
        f"\nbaseline {settings.baseline}; margin {settings.margin}; intervals clustered by document (README, "
        f"'Comparing formats'); verdicts read the interval at the family's level, family: {family}.\n"
        "recovered = lower bound >= -margin; within margin = a drop detected, lower bound >= -margin; degraded = "
        "upper bound < -margin; else inconclusive. need = documents for a recovered call at the measured "
        f"disagreement (80% power); p_adj: {settings.method} within the family, of 'no difference'"
    )
    lines.append(_floor_note(table, settings))
    return "\n".join(lines)


def _floor_note(table: pd.DataFrame, settings: CompareSettings) -> str:
    """What the floor column means, and where there is none."""
    if not (table["role"] == REPLICATE).any():
        return (
            f"noise floor: none measured (no {settings.baseline} replicates; run the baseline with replicates.k=1, "
            "see README 'Comparing formats')"
        )
    return (
        f"noise floor = {settings.baseline} replicates (format {settings.baseline}~r<i>: another request "
        "concurrency, so other batches) vs the baseline: root-mean-square |diff| / share of documents flipped; the "
        "run-to-run variance beyond document sampling (run_var) widens every variant's interval"
    )
