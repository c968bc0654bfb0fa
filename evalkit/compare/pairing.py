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
