"""How long `evalkit compare` takes on a study-sized store: ~10M sample rows (3 models x 4 formats x ~834k
documents), in the results contract. `make bench` runs it; the figure goes to bench/compare_speed.md.

The synthetic grid: suite A is MMLU-like (57 subjects of 1000 documents, size-weighted), a multiple-choice
log-likelihood task (10k documents, responses with choice log-likelihoods, so KL and agreement are computed), a
GSM8K-sized task and a continuous-score task; suite B holds 10 binary tasks of 76.5k documents (RULER-like volume).
Baseline answers are right with a per-task probability; each variant flips a share of them each way. The files
are written first (not timed); the timed part is what `evalkit compare` does: read the samples (Arrow) and scores,
pair, clustered paired intervals (closed form, compare/paired.py), tests, adjust, verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.compare import CompareSettings, compare
from evalkit.compare.frame import read_samples
from evalkit.results.store import SAMPLES_SCHEMA, SCORES_SCHEMA, ResultsStore

OUT = Path(__file__).resolve().parent
MODELS = ("model-8b", "model-70b", "model-405b")
FORMATS = {"bf16": (0.0, 0.0), "fp8": (0.01, 0.01), "w8a8": (0.015, 0.012), "w4a16": (0.03, 0.02)}
"""Format -> (share of right answers turned wrong, share of wrong answers turned right) vs the baseline."""


def _tasks(scale: float) -> dict[str, list[tuple[str, str, int, str]]]:
    """benchmark -> [(task, cluster, documents, kind)] with kind binary / mc / continuous."""
    n = lambda k: max(20, int(k * scale))  # noqa: E731
    a = [("mmlu_llama", f"mmlu_llama_subject{i:02d}", n(1000), "binary") for i in range(57)]
    a += [("hellaswag", "hellaswag", n(10_000), "mc"), ("gsm8k_llama", "gsm8k_llama", n(1319), "binary")]
    a += [("ifeval_like", "ifeval_like", n(541), "continuous")]
    b = [(f"long_{i}", f"long_{i}", n(76_500), "binary") for i in range(10)]
    return {"bench_a": a, "bench_b": b}


def write_store(root: Path, scale: float, seed: int = 0) -> int:
    """Writes the synthetic store; returns the number of sample rows."""
    rng = np.random.default_rng(seed)
    store = ResultsStore.open_for_writing(root)
    total = 0
    for bench, tasks in _tasks(scale).items():
        suite = "suite_" + bench[-1]
        for model in MODELS:
            base = {c: _baseline(rng, n, kind) for _, c, n, kind in tasks}
            for fmt, (down, up) in FORMATS.items():
                cols: dict[str, list[np.ndarray]] = {k: [] for k in ("task", "doc", "value", "resp")}
                score_rows = []
                for task, cluster, n, kind in tasks:
                    value, resp = _variant(rng, base[cluster], kind, down, up)
                    cols["task"].append(np.full(n, cluster, dtype=object))
                    cols["doc"].append(np.arange(n))
                    cols["value"].append(value)
                    cols["resp"].append(resp)
                    score_rows.append((task, cluster, value))
                table = _samples_table(model, fmt, bench, cols)
                total += table.num_rows
                pq.write_table(table, store.samples_dir / f"{model}__{fmt}__{bench}.parquet")
                pq.write_table(
                    _scores_table(model, fmt, bench, suite, score_rows),
                    store.scores_dir / f"{model}__{fmt}__{bench}.parquet",
                )
    return total


def _baseline(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "continuous":
        return rng.integers(0, 5, n) / 4
    if kind == "mc":
        return rng.normal(0, 2, (n, 4))
    return (rng.random(n) < rng.uniform(0.3, 0.8)).astype(float)


def _variant(
    rng: np.random.Generator, base: np.ndarray, kind: str, down: float, up: float
) -> tuple[np.ndarray, np.ndarray]:
    if kind == "mc":
        lls = base + rng.normal(0, 0.3 if down else 0.0, base.shape)
        right = (lls.argmax(axis=1) == 0).astype(float)  # choice 0 is the gold answer
        resp = np.array(
            [json.dumps({"argmax": int(r.argmax()), "loglikelihoods": [round(x, 4) for x in r]}) for r in lls]
        )
        return right, resp
    if kind == "continuous":
        move = rng.random(len(base))
        value = np.clip(base - 0.25 * (move < down * 4) + 0.25 * (move > 1 - up * 4), 0, 1)
        return value, np.full(len(base), "text", dtype=object)
    flip = rng.random(len(base))
    value = np.where(base == 1, (flip >= down).astype(float), (flip < up).astype(float))
    return value, np.where(value == 1, "A", "B").astype(object)


def _samples_table(model: str, fmt: str, bench: str, cols: dict[str, list[np.ndarray]]) -> pa.Table:
    task = np.concatenate(cols["task"])
    doc = np.concatenate(cols["doc"])
    value = np.concatenate(cols["value"])
    n = len(task)
    metrics = pa.MapArray.from_arrays(
        np.arange(n + 1, dtype=np.int32), pa.array(np.full(n, "acc", dtype=object)), pa.array(value)
    )
    prompt_hash = pd.Series(task).str.cat(pd.Series(doc).astype(str), sep=":")
    const = lambda v: pa.array(np.full(n, v, dtype=object), pa.string())  # noqa: E731
    return pa.table(
        {
            "model": const(model),
            "format": const(fmt),
            "benchmark": const(bench),
            "task": pa.array(task, pa.string()),
            "doc_id": pa.array(doc, pa.int64()),
            "prompt_hash": pa.array(prompt_hash.to_numpy(), pa.string()),
            "target": const("A"),
            "response": pa.array(np.concatenate(cols["resp"]), pa.string()),
            "metrics": metrics,
            "cell_id": const(f"{model}__{fmt}__{bench}__synthetic"),
            "run_id": const("synthetic"),
        },
        schema=SAMPLES_SCHEMA,
    )


def _scores_table(model: str, fmt: str, bench: str, suite: str, rows: list[tuple[str, str, np.ndarray]]) -> pa.Table:
    by_task: dict[str, list[np.ndarray]] = {}
    for task, _, value in rows:
        by_task.setdefault(task, []).append(value)
    now = datetime.now(timezone.utc)
    records = [
        {
            "model": model, "format": fmt, "benchmark": bench, "suite": suite, "task": task, "metric": "acc",
            "filter": "", "value": float(np.concatenate(v).mean() * 100), "stderr": None, "normalized": None,
            "is_primary": True, "higher_is_better": True, "n_samples": int(sum(len(x) for x in v)), "status": "ok",
            "error": None, "log_path": "", "cell_id": f"{model}__{fmt}__{bench}__synthetic", "run_id": "synthetic",
            "started_at": now, "finished_at": now, "checkpoint": "", "checkpoint_path": "", "evalkit_version": "",
            "evalkit_commit": "", "lm_eval_version": "", "vllm_version": "", "config_hash": "",
        }
        for task, v in by_task.items()
    ]  # fmt: skip
    return pa.Table.from_pylist(records, schema=SCORES_SCHEMA)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", type=float, default=1.0, help="documents per task x scale (1.0: ~10M rows)")
    p.add_argument("--keep", type=Path, default=None, help="write the store here and keep it (default: a temp dir)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="evalkit-compare-bench-") as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        rows = write_store(root, args.scale)
        t_write = time.perf_counter() - t0
        print(f"wrote {rows:,} sample rows in {t_write:.1f} s to {root}", flush=True)
        t0 = time.perf_counter()
        samples = read_samples(root)
        scores = ResultsStore(root).read_scores()
        t_read = time.perf_counter() - t0
        load_before = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        table, notes = compare(samples, scores, CompareSettings())
        t_analyse, c_analyse = time.perf_counter() - t0, time.process_time() - c0
        load_after = os.getloadavg()[0]
    total = t_read + t_analyse
    suites = table[table["task"] == "*"]
    print(
        f"read {t_read:.1f} s, analysis {t_analyse:.1f} s (CPU {c_analyse:.1f} s), total {total:.1f} s; "
        f"{len(table)} comparison rows; load average {load_before:.1f} -> {load_after:.1f}"
    )
    print(suites[["model", "format", "suite", "diff", "diff_lo", "diff_hi", "p_adjusted", "verdict"]].to_string())
    cmd = "python -m bench.compare_speed" + (f" --scale {args.scale:g}" if args.scale != 1.0 else "")
    md = [
        "# `evalkit compare` on ~10M sample rows",
        "",
        f"Command: `{cmd}` (part of `make bench`). Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python {sys.version.split()[0]}; "
        f"1-minute load average {load_before:.1f} at the start of the analysis, {load_after:.1f} at its end. The "
        f"analysis used {c_analyse:.1f} s of CPU (user + system, one process): on a shared machine the wall time "
        "is longer by the other processes' share.",
        "",
        "| sample rows | comparisons (suite + task rows) | read (Arrow) | analysis | total (target < 30 s) |",
        "|---:|---:|---:|---:|---:|",
        f"| {rows:,} | {len(table)} | {t_read:.1f} s | {t_analyse:.1f} s | **{total:.1f} s** |",
        "",
        "Synthetic grid: 3 models x 4 formats (bf16 baseline, fp8, w8a8, w4a16 flipping 1-3% of answers); suite A: "
        "57 MMLU-like subjects, a 10k-document multiple-choice task with choice log-likelihoods (KL, agreement), a "
        "GSM8K-sized task, a continuous-score task; suite B: 10 binary tasks of 76.5k documents. Intervals clustered "
        "by document in closed form (compare/paired.py, no resampling); writing the files is not timed.",
        "",
        "Suite verdicts of the run:",
        "",
        suites[["model", "format", "suite", "diff", "diff_lo", "diff_hi", "p_adjusted", "verdict"]]
        .round(3)
        .to_markdown(index=False),
    ]
    if notes:
        md += ["", "Notes: " + "; ".join(notes)]
    (OUT / "compare_speed.md").write_text("\n".join(md) + "\n")
    print(f"written: {OUT / 'compare_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
