"""How a divergence cell stores one prompt's per-token top-k distributions in its sample row (pure): the one module of
the family that code outside `evalkit.benchmarks` may import (`evalkit.compare.token_divergence` reads the rows).

The row's `response` is compact JSON `{"k": K, "ids": [[...]], "lp": [[...]]}`: for each prompt position after the
first (the first has no context to predict it), the K most likely next-token ids by rank and their logprobs. The
`prompt_hash` is the hash of the prompt's token ids, so two formats pair only when they were fed the very same
tokens. Kept in the samples rather than a side file so that a results directory stays self-contained (compare works
on `--results DIR` alone) and the rows commit atomically with the cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from evalkit.util.hashing import sha256_text

LOGPROB_DECIMALS = 5
"""Stored precision: a KL of 1e-5 nats is far below what any format change shows, and it halves the text."""
NEG_INF = -9999.0
"""vLLM's stand-in for a logprob of -inf (clamp_prompt_logprobs); kept as it is."""


@dataclass(frozen=True)
class TopK:
    """One prompt: row t is the distribution of the token at position t + 1."""

    ids: np.ndarray
    """int64, (positions, k): token ids by rank."""
    logprobs: np.ndarray
    """float64, (positions, k): their logprobs, non-increasing along a row."""

    def encode(self) -> str:
        return json.dumps(
            {
                "k": int(self.ids.shape[1]),
                "ids": self.ids.tolist(),
                "lp": np.round(self.logprobs, LOGPROB_DECIMALS).tolist(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, response: str) -> TopK:
        data = json.loads(response)
        k = int(data["k"])
        ids = np.asarray(data["ids"], dtype=np.int64).reshape(-1, k)
        logprobs = np.asarray(data["lp"], dtype=np.float64).reshape(-1, k)
        return cls(ids, logprobs)


def prompt_hash(token_ids: list[int]) -> str:
    """Identity of a prompt as the model saw it: its token ids (a different tokenizer gives a different hash)."""
    return sha256_text(json.dumps(token_ids, separators=(",", ":")))
