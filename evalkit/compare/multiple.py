"""Multiple-comparison control across the tests of a grid (statsmodels' multipletests)."""

from __future__ import annotations

import gc
from typing import Literal

import numpy as np
from statsmodels.stats.multitest import multipletests

Method = Literal["holm", "bh"]
_STATSMODELS = {"holm": "holm", "bh": "fdr_bh"}


def adjust(p_values: np.ndarray, method: Method = "holm") -> np.ndarray:
    """Adjusted p-values (Holm: family-wise error; bh: Benjamini-Hochberg false discovery rate). NaN stays NaN and
    is not counted as a test."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        # statsmodels' Holm calls gc.collect() each time (0.2 s with pandas and scipy loaded, once per family):
        # objects frozen here are not traversed by it; nothing else changes
        gc.freeze()
        try:
            out[ok] = multipletests(p[ok], method=_STATSMODELS[method])[1]
        finally:
            gc.unfreeze()
    return out
