"""Output divergence on multiple-choice log-likelihood tasks, from what the samples already hold (pure).

The lm-eval adapter stores such a document's response as JSON with the per-choice `loglikelihoods` (and `argmax`).
Per document: KL(baseline || variant) between the softmax distributions over the answer choices (nats), and
whether both pick the same choice (top-1 agreement).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


def choice_loglikelihoods(response: str) -> list[float] | None:
    """The per-choice log-likelihoods of a stored response, or None for a generation task."""
    if not response.startswith("{"):
        return None
    try:
        lls = json.loads(response).get("loglikelihoods")
    except (json.JSONDecodeError, AttributeError):
        return None
    return [float(x) for x in lls] if isinstance(lls, list) and lls else None


def kl_and_agreement(ll_b: np.ndarray, ll_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows are documents with the same number of choices. KL in nats (>= 0) and top-1 agreement (bool)."""
    lp_b = ll_b - np.logaddexp.reduce(ll_b, axis=1, keepdims=True)
    lp_v = ll_v - np.logaddexp.reduce(ll_v, axis=1, keepdims=True)
    kl = np.sum(np.exp(lp_b) * (lp_b - lp_v), axis=1)
    return np.maximum(kl, 0.0), ll_b.argmax(axis=1) == ll_v.argmax(axis=1)


def per_document(responses_b: pd.Series, responses_v: pd.Series) -> pd.DataFrame:
    """`kl` and `agree` per paired document (NaN where not a log-likelihood task or the choices differ in number)."""
    lb = [choice_loglikelihoods(r) for r in responses_b]
    lv = [choice_loglikelihoods(r) for r in responses_v]
    kl = np.full(len(lb), np.nan)
    agree = np.full(len(lb), np.nan)
    sizes = np.array(
        [len(b) if b is not None and v is not None and len(b) == len(v) else 0 for b, v in zip(lb, lv, strict=True)]
    )
    for k in set(sizes.tolist()) - {0}:
        idx = np.flatnonzero(sizes == k)
        kk, aa = kl_and_agreement(np.array([lb[i] for i in idx]), np.array([lv[i] for i in idx]))
        kl[idx], agree[idx] = kk, aa
    return pd.DataFrame({"kl": kl, "agree": agree}, index=responses_b.index)
