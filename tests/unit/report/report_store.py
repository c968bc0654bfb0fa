"""A small results store for the report tests, written with evalkit's own store writer (the results contract):
recorded lm-eval MMLU and HellaSwag runs (tests/fixtures/lm_eval) and a synthetic right/wrong suite, for a baseline
and three formats (one identical, one slightly noisier, one clearly worse), plus optionally a failed cell."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from paths import FIXTURES, REPO

from evalkit.benchmarks.lm_eval.leaderboard import promote_benchmarks
from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs
from evalkit.core.cell import Cell
from evalkit.core.datasources import local_source, sources_json
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

MODEL = "smollm2-135m-instruct"
FORMATS = ("bf16", "fp8", "w8a8", "w4a16")
FAILED = ("w8a8", "demo_humaneval")
FAILED_LOG = "/jobs/smollm2-135m-instruct__w8a8/humaneval.log"


DATA = REPO / "data" / "hails" / "mmlu_no_train" / "astronomy" / "test.jsonl"


def _run(fmt: str) -> RunInfo:
    now = datetime.now(timezone.utc)
    prov = Provenance("0.1.0", "abc1234", "0.4.13", "0.32.0", f"/ckpt/{fmt}", "cfg0")
    return RunInfo(
        new_run_id(),
        now,
        now,
        f"/jobs/{MODEL}__{fmt}/job.log",
        prov,
        sources_json([local_source("hails/mmlu_no_train", DATA, "test")]),
        True,
    )


def _cell(fmt: str, benchmark: str, suite: str) -> Cell:
    return Cell(MODEL, fmt, benchmark, suite, f"recipe:{fmt}", "f" * 64)


def _flip(samples: list[SampleRecord], metric: str, n: int) -> list[SampleRecord]:
    """The first `n` right documents become wrong."""
    out, left = [], n
    for s in samples:
        if left and s.metrics.get(metric) == 1.0:
            s = replace(s, metrics={**s.metrics, metric: 0.0})
            left -= 1
        out.append(s)
    return out


def _shift_loglikelihoods(samples: list[SampleRecord], scale: float) -> list[SampleRecord]:
    """A variant's choice log-likelihoods: the baseline's plus a deterministic perturbation (non-zero choice KL)."""
    out = []
    for s in samples:
        resp = json.loads(s.response)
        resp["loglikelihoods"] = [ll + scale * (i % 3) for i, ll in enumerate(resp["loglikelihoods"])]
        out.append(replace(s, response=json.dumps(resp)))
    return out


def _recorded(name: str) -> tuple[list[TaskScore], list[SampleRecord]]:
    scores, samples = read_run_outputs(RunFiles(FIXTURES / "lm_eval" / name / "demo"))
    return promote_benchmarks(scores), samples


def _binary(right: np.ndarray) -> tuple[list[TaskScore], list[SampleRecord]]:
    score = TaskScore(task="arc_demo", metric="acc", value=100 * right.mean(), n_samples=len(right), is_primary=True)
    samples = [
        SampleRecord("arc_demo", i, f"h{i}", "A", "A" if r else "B", {"acc": float(r)}) for i, r in enumerate(right)
    ]
    return [score], samples


def write_store(root: Path, with_failure: bool = True) -> Path:
    store = ResultsStore.open_for_writing(root)
    mmlu_scores, mmlu_samples = _recorded("v1_mmlu")
    hs_scores, hs_samples = _recorded("v1_hellaswag")
    rng = np.random.default_rng(0)
    base = rng.random(3000) < 0.6  # enough documents that identical outputs are recovered at a 1-point margin
    variants = {"bf16": base, "fp8": base.copy(), "w8a8": base.copy(), "w4a16": base.copy()}
    variants["w8a8"][np.flatnonzero(base)[:6]] = False  # a small drop
    variants["w4a16"][np.flatnonzero(base)[:60]] = False  # 2 points down: beyond the 1-point margin
    flips = {"bf16": 0, "fp8": 0, "w8a8": 1, "w4a16": 2}
    shift = {"bf16": 0.0, "fp8": 0.1, "w8a8": 0.5, "w4a16": 2.0}
    for fmt in FORMATS:
        run = _run(fmt)
        store.commit_cell(
            _cell(fmt, "demo_mmlu", "mmlu"), run, mmlu_scores, _flip(mmlu_samples, "exact_match", flips[fmt])
        )
        store.commit_cell(
            _cell(fmt, "demo_hellaswag", "hellaswag"), run, hs_scores, _shift_loglikelihoods(hs_samples, shift[fmt])
        )
        scores, samples = _binary(variants[fmt])
        store.commit_cell(_cell(fmt, "demo_arc", "arc_demo"), run, scores, samples)
    if with_failure:
        fmt, bench = FAILED
        store.record_failure(
            _cell(fmt, bench, "humaneval"),
            replace(_run(fmt), log_path=FAILED_LOG),
            "ServerError: vLLM server exited with code 1 before /health",
        )
    return root
