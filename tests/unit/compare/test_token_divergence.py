"""Token KL (top-k plus tail bucket), same-top-token rate and llama.cpp's percentiles, with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fixture_store import binary_task, commit
from scipy.stats import entropy

from evalkit.benchmarks.divergence.names import TopK, prompt_hash
from evalkit.cli import main
from evalkit.compare.token_divergence import compare_divergence, render, summarize, token_kl
from evalkit.core.errors import CompareError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.store import ResultsStore


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """What vLLM returns: the k most likely ids per row, by rank, and their logprobs."""
    ids = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return ids, np.log(np.take_along_axis(probs, ids, axis=1))


def random_dists(rng: np.random.Generator, n: int, vocab: int) -> np.ndarray:
    return rng.dirichlet(np.full(vocab, 0.3), size=n)


def test_identical_logprobs_give_kl_zero_and_same_top_one() -> None:
    ids, lp = top_k(random_dists(np.random.default_rng(0), 500, 100), 20)
    kl, same = token_kl(ids, lp, ids.copy(), lp.copy())
    assert np.all(kl == 0.0)
    assert same.all()
    s = summarize(kl, same)
    assert s["kl_mean"] == 0.0 and s["kl_max"] == 0.0 and s["same_top"] == 1.0 and s["same_top_se"] == 0.0


def test_kl_equals_scipy_on_the_bucketed_distributions() -> None:
    """Where the variant returns every baseline top-k token, the KL is exactly that of the k + 1 buckets."""
    rng = np.random.default_rng(1)
    p, q = random_dists(rng, 50, 30), random_dists(rng, 50, 30)
    k = 5
    ids_b, lp_b = top_k(p, k)
    ids_v = np.argsort(-q, axis=1)[:, :30]  # the variant returns its whole vocabulary: every baseline id is found
    lp_v = np.log(np.take_along_axis(q, ids_v, axis=1))
    kl, same = token_kl(ids_b, lp_b, ids_v, lp_v)
    for i in range(50):
        pb = p[i, ids_b[i]]
        qb = q[i, ids_b[i]]
        expected = entropy(np.append(pb, 1 - pb.sum()), np.append(qb, 1 - qb.sum()))
        assert kl[i] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(same, p.argmax(axis=1) == q.argmax(axis=1))


def test_bucketed_kl_never_exceeds_the_full_kl() -> None:
    rng = np.random.default_rng(2)
    p, q = random_dists(rng, 200, 50), random_dists(rng, 200, 50)
    ids_b, lp_b = top_k(p, 10)
    ids_v, lp_v = top_k(q, 50)
    kl, _ = token_kl(ids_b, lp_b, ids_v, lp_v)
    assert np.all(kl <= entropy(p.T, q.T) + 1e-12)


def test_a_baseline_token_outside_the_variants_top_k_gets_its_unreturned_mass() -> None:
    # baseline top-2: ids 0 (0.6), 1 (0.3); tail 0.1. Variant top-2: ids 0 (0.5), 2 (0.3): id 1 missing, and the
    # variant's unreturned 0.2 is capped at its 2nd probability (0.3): q(1) = 0.2, tail 1 - 0.5 - 0.2 = 0.3
    ids_b, lp_b = np.array([[0, 1]]), np.log([[0.6, 0.3]])
    ids_v, lp_v = np.array([[0, 2]]), np.log([[0.5, 0.3]])
    kl, same = token_kl(ids_b, lp_b, ids_v, lp_v)
    assert kl[0] == pytest.approx(entropy([0.6, 0.3, 0.1], [0.5, 0.2, 0.3]))
    assert same[0]


def test_summary_has_llama_cpp_percentiles_and_binomial_se() -> None:
    kl = np.arange(1001, dtype=float) / 1000
    same = np.arange(1001) % 4 != 0
    s = summarize(kl, same)
    assert s["kl_max"] == 1.0 and s["kl_min"] == 0.0 and s["kl_median"] == 0.5
    assert s["kl_p99"] == pytest.approx(0.99) and s["kl_p0_1"] == pytest.approx(0.001)
    rate = same.mean()
    # every token its own prompt: the binomial SE with the CR1 small-sample factor (n - 1 for n)
    assert s["same_top_se"] == pytest.approx(np.sqrt(rate * (1 - rate) / 1000))


def samples_table(rows: list[tuple[str, int, list[int], TopK]]) -> pa.Table:
    return pa.table(
        {
            "model": ["m"] * len(rows),
            "format": [r[0] for r in rows],
            "benchmark": ["demo_divergence"] * len(rows),
            "task": ["divergence"] * len(rows),
            "doc_id": [r[1] for r in rows],
            "prompt_hash": [prompt_hash(r[2]) for r in rows],
            "response": [r[3].encode() for r in rows],
        }
    )


def test_compare_from_stored_samples_round_trips_and_pairs_prompts() -> None:
    rng = np.random.default_rng(3)
    a = TopK(*top_k(random_dists(rng, 7, 40), 20))
    b = TopK(*top_k(random_dists(rng, 4, 40), 20))
    a_q = TopK(*top_k(random_dists(rng, 7, 40), 20))
    table = samples_table(
        [
            ("bf16", 0, [1, 2, 3], a),
            ("bf16", 1, [4, 5], b),
            ("fp8", 0, [1, 2, 3], a),
            ("fp8", 1, [4, 5], b),
            ("w4a16", 0, [1, 2, 3], a_q),
            ("w4a16", 1, [4, 5], b),
        ]
    )
    out = compare_divergence(table, "bf16").set_index("format")
    assert out.loc["fp8", "kl_mean"] == 0.0 and out.loc["fp8", "same_top"] == 1.0
    assert out.loc["fp8", "tokens"] == 11 and out.loc["fp8", "prompts"] == 2
    assert out.loc["w4a16", "kl_mean"] > 0.01
    assert "same top %" in render(out.reset_index())


def test_other_tokenization_is_a_pairing_error() -> None:
    a = TopK(np.zeros((2, 1), dtype=np.int64), np.zeros((2, 1)))
    table = samples_table([("bf16", 0, [1, 2, 3], a), ("fp8", 0, [1, 2, 4], a)])
    with pytest.raises(CompareError, match="1 only in the baseline, 1 only in the variant"):
        compare_divergence(table, "bf16")


def test_no_divergence_samples_gives_an_empty_table() -> None:
    assert compare_divergence(samples_table([]).slice(0, 0), "bf16").empty


def test_evalkit_compare_reports_token_divergence_of_divergence_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the store writer and the CLI: the divergence cells sit beside a scored suite, which compares as
    before (no primary score of their own), and the token table is printed and written."""
    rng = np.random.default_rng(4)
    prompts: dict[str, list[TopK]] = {"bf16": [], "w8a8": []}
    for _ in range(3):
        p = random_dists(rng, 30, 60)
        prompts["bf16"].append(TopK(*top_k(p, 20)))
        prompts["w8a8"].append(TopK(*top_k(0.9 * p + 0.1 * random_dists(rng, 30, 60), 20)))
    store = ResultsStore.open_for_writing(tmp_path)
    for fmt, tops in prompts.items():
        score, samples = binary_task("task_a", [1, 0, 1, 1] * 25)
        commit(store, "m", fmt, "bench_a", "suite_a", [score], samples)
        rows = [
            SampleRecord("divergence", i, prompt_hash([i, 7]), f"q{i}", t.encode(), {"positions": 30.0})
            for i, t in enumerate(tops)
        ]
        counts = [TaskScore("divergence", "prompts", 3.0, n_samples=3)]
        commit(store, "m", fmt, "demo_divergence", "divergence", counts, rows)
    assert main(["compare", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "token divergence vs bf16" in out and "same top %" in out
    table = pd.read_parquet(tmp_path / "compare" / "token_divergence.parquet")
    assert table["format"].tolist() == ["w8a8"] and table["tokens"].tolist() == [90]
    assert 0 < table["kl_mean"].iloc[0] < table["kl_max"].iloc[0]
    assert set(pd.read_parquet(tmp_path / "compare" / "comparisons.parquet")["suite"]) == {"suite_a"}
