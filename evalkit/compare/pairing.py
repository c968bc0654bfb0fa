"""Same documents or no comparison: baseline and variant rows matched on (task, doc_id, prompt_hash) (pure); a
document one side could not score leaves both."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.core.errors import CompareError

KEY = ["cluster", "doc_id", "prompt_hash"]
"""A document: the samples' task (a subtask of a suite task), its id, and the hash of the exact prompt sent (as
categorical / integer codes of the whole samples table, so equal strings have equal codes)."""


def pair(base: pd.DataFrame, variant: pd.DataFrame, where: str) -> pd.DataFrame:
    """Inner join of one suite's baseline and variant documents; any document on one side only is an error that
    names the task and the counts. Columns of each side get suffixes `_b` and `_v`."""
    # a subtask belongs to one task: the key alone pairs, and the task column comes from the baseline
    variant = variant.drop(columns="task")
    fast = _positional(base, variant)
    if fast is not None:
        return fast
    merged = base.merge(variant, on=KEY, how="outer", suffixes=("_b", "_v"), indicator=True)
    lonely = merged[merged["_merge"] != "both"]
    if not lonely.empty:
        lines = []
        for cluster, grp in lonely.groupby("cluster", sort=True, observed=True):
            n_b = int((base["cluster"] == cluster).sum())
            n_v = int((variant["cluster"] == cluster).sum())
            only_b = int((grp["_merge"] == "left_only").sum())
            only_v = int((grp["_merge"] == "right_only").sum())
            lines.append(
                f"task {cluster}: baseline {n_b} documents, variant {n_v}; {only_b} only in the baseline, "
                f"{only_v} only in the variant (matched on doc_id and prompt_hash)"
            )
        raise CompareError(
            f"{where}: baseline and variant were not run on the same documents:\n    " + "\n    ".join(lines),
            hint="re-run the stale or partial cell (`evalkit run model=... format=... benchmark=...`) so both use "
            "the same data and prompts",
        )
    return merged.drop(columns="_merge")


def _key_order(frame: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """The rows of `frame` in the order of the outer merge on KEY (categorical codes, then values), and the sorted
    key arrays; None where the key is not an integer code per column or repeats."""
    cols = []
    for k in KEY:
        col = frame[k]
        values = col.cat.codes.to_numpy() if isinstance(col.dtype, pd.CategoricalDtype) else col.to_numpy()
        if values.dtype.kind not in "iu":
            return None
        cols.append(values)
    order = np.lexsort(cols[::-1])
    ordered = [c[order] for c in cols]
    same = np.ones(len(order) - 1 if len(order) else 0, bool)
    for c in ordered:
        same &= c[1:] == c[:-1]
    return None if same.any() else (order, ordered)


def _positional(base: pd.DataFrame, variant: pd.DataFrame) -> pd.DataFrame | None:
    """The outer merge of `pair` where both sides hold the same documents (the usual case), without the merge: both
    sorted by the key (the merge's own order) and put side by side. None where they differ (or a key repeats, or a
    categorical's categories differ): the merge then finds and names what differs. The merge's hash join and
    column takes cost seconds per million rows."""
    if len(base) != len(variant) or not all(
        isinstance(base[k].dtype, pd.CategoricalDtype) == isinstance(variant[k].dtype, pd.CategoricalDtype)
        and (
            not isinstance(base[k].dtype, pd.CategoricalDtype)
            or base[k].cat.categories.equals(variant[k].cat.categories)
        )
        for k in KEY
    ):
        return None
    ob, ov = _key_order(base), _key_order(variant)
    if ob is None or ov is None or not all(np.array_equal(b, v) for b, v in zip(ob[1], ov[1], strict=True)):
        return None
    b = base.iloc[ob[0]].reset_index(drop=True)
    v = variant.iloc[ov[0]].reset_index(drop=True)
    rest_b = [c for c in b.columns if c not in KEY]
    rest_v = [c for c in v.columns if c not in KEY]
    out = {k: b[k] for k in KEY}
    out |= {(f"{c}_b" if c in rest_v else c): b[c] for c in rest_b}
    out |= {(f"{c}_v" if c in rest_b else c): v[c] for c in rest_v}
    # the merge's column order: keys where the left frame has them, then the right frame's other columns
    left = [(k if k in KEY else (f"{k}_b" if k in rest_v else k)) for k in base.columns]
    right = [(f"{c}_v" if c in rest_b else c) for c in variant.columns if c not in KEY]
    return pd.DataFrame({c: out[c] for c in left + right})


def drop_unscored(paired: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """`paired` without the documents one side has no score for (`y` NaN: an Arena-Hard question whose judgments
    all failed), on both sides: a paired difference needs both. The others' weights are rescaled within their
    cluster, so each cluster keeps its share of its task (arena's one cluster: the mean over the questions left).
    Also returns how many documents left, per task (empty when none)."""
    gone = np.isnan(paired["y_b"].to_numpy()) | np.isnan(paired["y_v"].to_numpy())
    if not gone.any():
        return paired, pd.Series(dtype=int)
    counts = paired.loc[gone, "task"].value_counts(sort=False)
    cluster, _ = pd.factorize(paired["cluster"])
    total = np.bincount(cluster, paired["w_b"].to_numpy())
    left = np.bincount(cluster[~gone], paired["w_b"].to_numpy()[~gone], minlength=len(total))
    scale = np.divide(total, left, out=np.zeros_like(total), where=left > 0)[cluster[~gone]]
    kept = paired[~gone]
    kept = kept.assign(w_b=kept["w_b"].to_numpy() * scale, w_v=kept["w_v"].to_numpy() * scale)
    return kept, counts[counts > 0]
