"""Token-level output divergence of each format vs the baseline, from the `divergence` cells' samples (pure numpy).

Each sample holds, per prompt position, the baseline's or the variant's top-k next-token ids and logprobs
(`evalkit.benchmarks.divergence.names`). Per token, KL(baseline || variant) is taken over k + 1 buckets: the
baseline's top-k tokens and one bucket for all other tokens (the tail mass). What the tail bucket does: merging the
tail tokens into one can only lower the KL (data-processing inequality), so with both sides' probabilities known the
estimate is at most the full-vocabulary KL (llama.cpp's, which has all logits), by the divergence hidden inside the
tail (small when the top-k holds most of the mass). But the variant's probability of a baseline top-k token it did not
return is unknown: it gets the variant's unreturned mass shared equally among such tokens, capped at the variant's
k-th probability (a token outside its top-k cannot be more likely than that). That guess can be too low, and then the
token's KL is overstated: on synthetic distributions 10 of 80,000 tokens were, by up to 0.034 nats (issue 15). So the
estimate is neither a bound above nor below per token; on the mean the tail understatement usually dominates.

Reported as llama.cpp's perplexity tool does for one pair: mean KL, percentiles of the per-token KL and the
same-top-token rate, tokens pooled over prompts; but the standard errors are clustered by prompt (the tokens of one
prompt share its context and are not independent draws; Miller 2024, arXiv 2411.00640).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.benchmarks.divergence.names import TopK
from evalkit.core.errors import CompareError
from evalkit.util.text import text_table

TASK = "divergence"
"""The task name of a divergence cell's samples."""

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("kl_max", 100.0),
    ("kl_p99_9", 99.9),
    ("kl_p99", 99.0),
    ("kl_p95", 95.0),
    ("kl_p90", 90.0),
    ("kl_median", 50.0),
    ("kl_p10", 10.0),
    ("kl_p5", 5.0),
    ("kl_p1", 1.0),
    ("kl_p0_1", 0.1),
    ("kl_min", 0.0),
)
"""llama.cpp's KLD percentiles (perplexity --kl-divergence), as column name and percent."""
_SUMMARY_COLUMNS = ["tokens", "kl_mean", "kl_mean_se", "same_top", "same_top_se", *(n for n, _ in PERCENTILES)]

_TINY = 1e-12
"""Floor of a probability in a log: a variant can round a token's probability to 0 where the baseline's is not."""
_CHUNK = 65536
"""Tokens per vectorised block: bounds the (tokens, k, k) match array at ~26 MB for k = 20."""


def token_kl(ids_b: np.ndarray, lp_b: np.ndarray, ids_v: np.ndarray, lp_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per token (rows): KL(baseline || variant) in nats over the baseline's top-k plus the tail bucket, and whether
    both put the same token first. `ids_*`/`lp_*` are (tokens, k) arrays, columns by rank."""
    kl = np.empty(len(ids_b))
    for start in range(0, len(ids_b), _CHUNK):
        end = start + _CHUNK
        kl[start:end] = _kl_block(ids_b[start:end], lp_b[start:end], ids_v[start:end], lp_v[start:end])
    return kl, ids_b[:, 0] == ids_v[:, 0]


def _kl_block(ids_b: np.ndarray, lp_b: np.ndarray, ids_v: np.ndarray, lp_v: np.ndarray) -> np.ndarray:
    match = ids_b[:, :, None] == ids_v[:, None, :]  # (n, k_b, k_v): where each baseline token sits in the variant's
    found = match.any(axis=2)
    # the variant's logprob of each found baseline token, taken as stored (not log(exp(.))): identical inputs give 0
    lq_found = np.take_along_axis(lp_v, match.argmax(axis=2), axis=1)
    q_returned = np.exp(lp_v)
    unreturned = np.clip(1.0 - q_returned.sum(axis=1), 0.0, 1.0)
    n_missing = (~found).sum(axis=1)
    q_missing = np.minimum(q_returned.min(axis=1), unreturned / np.maximum(n_missing, 1))
    lq = np.where(found, lq_found, np.log(np.maximum(q_missing, _TINY))[:, None])

    p = np.exp(lp_b)
    p_tail = np.clip(1.0 - p.sum(axis=1), 0.0, 1.0)
    q_tail = np.clip(1.0 - np.exp(lq).sum(axis=1), _TINY, 1.0)
    head = np.sum(p * (lp_b - lq), axis=1)
    tail = np.where(p_tail > 0, p_tail * (np.log(np.maximum(p_tail, _TINY)) - np.log(q_tail)), 0.0)
    return np.maximum(head + tail, 0.0)  # bucketed KL of two distributions is >= 0; rounding can dip below


def clustered_se(x: np.ndarray, prompt: np.ndarray) -> float:
    """Standard error of the mean of `x` with the observations of one prompt (integer codes) as one cluster: the
    cluster-robust (CR1) variance sum_g (sum_i in g (x_i - mean))^2 / n^2 x G / (G - 1). NaN with one prompt."""
    _, g = np.unique(prompt, return_inverse=True)
    n_g = int(g.max()) + 1 if len(g) else 0
    if n_g < 2:
        return float("nan")
    resid = np.bincount(g, x - x.mean())
    return float(np.sqrt(np.sum(resid**2) * n_g / (n_g - 1)) / len(x))


def summarize(kl: np.ndarray, same_top: np.ndarray, prompt: np.ndarray | None = None) -> dict[str, float]:
    """llama.cpp's summary of one pair: mean KL, percentiles, same-top-token rate; the two standard errors
    clustered by `prompt` (integer code per token; None: every token its own prompt, llama.cpp's i.i.d. SE)."""
    n = len(kl)
    if n == 0:
        raise CompareError("token divergence: no tokens to compare")
    prompt = np.arange(n) if prompt is None else prompt
    rate = float(same_top.mean())
    out = {
        "tokens": float(n),
        "kl_mean": float(kl.mean()),
        "kl_mean_se": clustered_se(kl, prompt),
        "same_top": rate,
        "same_top_se": clustered_se(same_top.astype(float), prompt),
    }
    values = np.percentile(kl, [q for _, q in PERCENTILES])
    out.update({name: float(v) for (name, _), v in zip(PERCENTILES, values, strict=True)})
    return out


def compare_divergence(samples: pa.Table, baseline: str) -> pd.DataFrame:
    """One row per (model, benchmark, format != baseline) with divergence samples; empty when there are none.
    Prompts pair on (doc_id, prompt_hash), the hash of the token ids: a prompt on one side only is an error."""
    rows = samples.filter(pc.equal(samples.column("task"), TASK))
    columns = ["model", "benchmark", "format", "prompts", *_SUMMARY_COLUMNS]
    if rows.num_rows == 0:
        return pd.DataFrame(columns=columns)
    df = rows.select(["model", "format", "benchmark", "doc_id", "prompt_hash", "response"]).to_pandas()
    out: list[dict[str, object]] = []
    for (model, bench), grp in df.groupby(["model", "benchmark"], sort=True):
        base = grp[grp["format"] == baseline]
        if base.empty:
            continue
        decoded_b = {(r.doc_id, r.prompt_hash): TopK.decode(r.response) for r in base.itertuples()}
        for fmt, var in grp[grp["format"] != baseline].groupby("format", sort=True):
            where = f"{model} / {bench}: {fmt} vs {baseline}"
            keys_v = set(zip(var["doc_id"], var["prompt_hash"], strict=True))
            _check_same_prompts(set(decoded_b), keys_v, where)
            pairs = [(decoded_b[(r.doc_id, r.prompt_hash)], TopK.decode(r.response)) for r in var.itertuples()]
            for b, v in pairs:
                if b.ids.shape[0] != v.ids.shape[0]:
                    raise CompareError(f"{where}: a prompt has {b.ids.shape[0]} vs {v.ids.shape[0]} positions")
            kl, same = token_kl(
                np.concatenate([b.ids for b, _ in pairs]),
                np.concatenate([b.logprobs for b, _ in pairs]),
                np.concatenate([v.ids for _, v in pairs]),
                np.concatenate([v.logprobs for _, v in pairs]),
            )
            prompt = np.repeat(np.arange(len(pairs)), [b.ids.shape[0] for b, _ in pairs])
            out.append(
                {"model": model, "benchmark": bench, "format": fmt, "prompts": len(pairs)} | summarize(kl, same, prompt)
            )
    return pd.DataFrame(out, columns=columns)


def _check_same_prompts(keys_b: set[tuple[int, str]], keys_v: set[tuple[int, str]], where: str) -> None:
    if keys_b == keys_v:
        return
    raise CompareError(
        f"{where}: baseline {len(keys_b)} prompts, variant {len(keys_v)}; {len(keys_b - keys_v)} only in the "
        f"baseline, {len(keys_v - keys_b)} only in the variant (matched on doc_id and the hash of the token ids)",
        hint="re-run the stale cell so both formats score the same prompts with the same tokenizer",
    )


def render(table: pd.DataFrame) -> str:
    """The terminal table: mean KL +- SE, median / 99th / max KL, same-top-token rate +- SE."""
    rows = []
    for r in table.to_dict("records"):
        f = {k: float(v) for k, v in r.items() if k not in ("model", "benchmark", "format")}
        rows.append(
            [
                str(r["model"]),
                str(r["format"]),
                int(f["prompts"]),
                int(f["tokens"]),
                f"{f['kl_mean']:.5f} +- {f['kl_mean_se']:.5f}",
                f"{f['kl_median']:.5f}",
                f"{f['kl_p99']:.5f}",
                f"{f['kl_max']:.5f}",
                f"{100 * f['same_top']:.2f} +- {100 * f['same_top_se']:.2f}",
            ]
        )
    header = ["model", "format", "prompts", "tokens", "KL mean (nats)", "median", "p99", "max", "same top %"]
    return text_table(header, rows, align_right=[False, False] + [True] * 7)
