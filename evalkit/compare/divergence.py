"""Output divergence on multiple-choice log-likelihood tasks, from what the samples already hold (pure).

The lm-eval adapter stores such a document's response as JSON with the per-choice `loglikelihoods` (and `argmax`).
Per document: KL(baseline || variant) between the softmax distributions over the answer choices (nats), and
whether both pick the same choice (top-1 agreement).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa


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
    return per_document_lls(lb, lv, responses_b.index)


def per_document_lls(lb: list[list[float] | None], lv: list[list[float] | None], index: pd.Index) -> pd.DataFrame:
    """As `per_document`, from parsed choice log-likelihoods."""
    kl = np.full(len(lb), np.nan)
    agree = np.full(len(lb), np.nan)
    sizes = np.array(
        [len(b) if b is not None and v is not None and len(b) == len(v) else 0 for b, v in zip(lb, lv, strict=True)]
    )
    for k in set(sizes.tolist()) - {0}:
        idx = np.flatnonzero(sizes == k)
        kk, aa = kl_and_agreement(np.array([lb[i] for i in idx]), np.array([lv[i] for i in idx]))
        kl[idx], agree[idx] = kk, aa
    return pd.DataFrame({"kl": kl, "agree": agree}, index=index)


class ChoiceCache:
    """Parses each stored response at most once (a baseline document is compared with every variant)."""

    def __init__(self, responses: pa.ChunkedArray) -> None:
        self._responses = responses
        self._parsed: dict[int, list[float] | None] = {}

    def divergence(self, rows_b: np.ndarray, rows_v: np.ndarray, mc: np.ndarray) -> pd.DataFrame:
        """Per pair of rows of the samples table; `mc` marks pairs whose responses may hold log-likelihoods."""
        need = [int(r) for r in np.concatenate([rows_b[mc], rows_v[mc]]) if int(r) not in self._parsed]
        if need:
            texts = self._responses.take(pa.array(need)).to_pylist()
            self._parsed.update(zip(need, (choice_loglikelihoods(t or "") for t in texts), strict=True))
        out = pd.DataFrame({"kl": np.full(len(mc), np.nan), "agree": np.full(len(mc), np.nan)})
        at = np.flatnonzero(mc)
        if len(at):
            lb = [self._parsed[int(r)] for r in rows_b[at]]
            lv = [self._parsed[int(r)] for r in rows_v[at]]
            found = per_document_lls(lb, lv, pd.RangeIndex(len(at)))
            out.loc[at, "kl"] = found["kl"].to_numpy()
            out.loc[at, "agree"] = found["agree"].to_numpy()
        return out
