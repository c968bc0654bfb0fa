"""The noise floor: how far the baseline moves against itself when only what should not matter changes (pure).

A baseline replicate (format `<baseline>~r<i>`, see `evalkit.core.config.ReplicatesConfig`) is compared with the
baseline like any variant. Its rows give, per (model, suite, task), the floor: the largest |difference| of any
replicate (`floor_diff`, points) and the replicates' mean share of documents whose score changed
(`floor_flip_rate`). Each variant is then reported against it: `beyond_floor` when its |difference| exceeds the
floor, and the verdict never calls a drop within the floor degraded (see verdict.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.core.config import replicate_of

KEY = ["model", "suite", "task"]
FLOOR_COLUMNS = ["n_replicates", "floor_diff", "floor_flip_rate"]


def is_replicate(fmt: str, baseline: str) -> bool:
    of = replicate_of(fmt)
    return of is not None and of[0] == baseline


def flip_rate(table: pd.DataFrame) -> pd.Series:
    """Share of paired documents whose score changed, either way."""
    return (table["flips_down"] + table["flips_up"]) / table["n_docs"].where(table["n_docs"] > 0)


def with_floor(table: pd.DataFrame, replicate: pd.Series) -> pd.DataFrame:
    """The comparisons `table` with `flip_rate`, the floor of its (model, suite, task) from the rows `replicate`
    marks (NaN where none was run) and `beyond_floor` (variants with a floor only; None otherwise)."""
    table = table.assign(flip_rate=flip_rate(table))
    reps = table[replicate]
    floor = (
        reps.assign(abs_diff=reps["diff"].abs())
        .groupby(KEY, sort=False, observed=True)
        .agg(n_replicates=("format", "size"), floor_diff=("abs_diff", "max"), floor_flip_rate=("flip_rate", "mean"))
        .reset_index()
    )
    out = table.merge(floor, on=KEY, how="left")
    out["n_replicates"] = out["n_replicates"].fillna(0).astype(int)
    has = (out["n_replicates"] > 0) & ~replicate.to_numpy()
    beyond = out["diff"].abs() > out["floor_diff"]
    out["beyond_floor"] = [bool(b) if h else None for b, h in zip(beyond, has, strict=True)]
    return out


def floor_points(row_floor_diff: float) -> float:
    """The floor as a number a verdict can use: 0 where no replicate measured one."""
    return 0.0 if np.isnan(row_floor_diff) else float(row_floor_diff)
