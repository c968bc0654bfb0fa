"""Same documents or no comparison: baseline and variant rows matched on (task, doc_id, prompt_hash) (pure)."""

from __future__ import annotations

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
