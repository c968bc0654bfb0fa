"""Run-to-run noise from baseline replicates, as a variance component (pure).

A baseline replicate (format `<baseline>~r<i>`, see `evalkit.core.config.ReplicatesConfig`) is compared with the
baseline like any variant. Its difference D_r has expectation 0; its variance is the document-sampling variance its
own interval already holds (se_r^2) plus whatever moves a whole run (batching, seeds): run_var, estimated per
(model, suite, task) by the method of moments, max(0, mean(D_r^2 - se_r^2)). Each variant's standard error becomes
sqrt(se^2 + run_var) (table.py): the baseline moving against itself widens the interval, more replicates estimate
run_var better instead of raising a maximum, and noise the document resampling already holds is not counted twice.
`floor_diff` (root mean square of the replicates' differences) and `floor_flip_rate` are shown for reading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.core.config import replicate_of

KEY = ["model", "suite", "task"]
FLOOR_COLUMNS = ["n_replicates", "floor_diff", "floor_flip_rate", "run_var"]


def is_replicate(fmt: str, baseline: str) -> bool:
    of = replicate_of(fmt)
    return of is not None and of[0] == baseline


def flip_rate(table: pd.DataFrame) -> pd.Series:
    """Share of paired documents whose score changed, either way."""
    return (table["flips_down"] + table["flips_up"]) / table["n_docs"].where(table["n_docs"] > 0)


def with_floor(table: pd.DataFrame, replicate: pd.Series) -> pd.DataFrame:
    """The comparisons `table` with `flip_rate`, the replicates' columns of its (model, suite, task) (NaN / 0 where
    none was run) and `beyond_floor` (variants with replicates only: |diff| above the replicates' RMS)."""
    table = table.assign(flip_rate=flip_rate(table))
    reps = table[replicate.to_numpy()]
    floor = (
        reps.assign(sq=reps["diff"] ** 2, excess=reps["diff"] ** 2 - reps["se"] ** 2)
        .groupby(KEY, sort=False, observed=True)
        .agg(
            n_replicates=("format", "size"),
            ms=("sq", "mean"),
            excess=("excess", "mean"),
            floor_flip_rate=("flip_rate", "mean"),
        )
        .reset_index()
    )
    floor["floor_diff"] = np.sqrt(floor.pop("ms"))
    floor["run_var"] = np.maximum(floor.pop("excess"), 0.0)
    out = table.merge(floor, on=KEY, how="left")
    out["n_replicates"] = out["n_replicates"].fillna(0).astype(int)
    has = (out["n_replicates"] > 0) & ~replicate.to_numpy()
    beyond = out["diff"].abs() > out["floor_diff"]
    out["beyond_floor"] = [bool(b) if h else None for b, h in zip(beyond, has, strict=True)]
    return out
