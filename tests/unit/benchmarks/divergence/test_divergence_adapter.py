"""The divergence adapter without a server: settings, vLLM's prompt_logprobs parsed to ranked top-k, the score phase
from a stored output file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from paths import REPO

from evalkit.benchmarks import get_adapter
from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.divergence.adapter import OUTPUT_FILE, SUBDIR, DivergenceSettings, _parse, prompts
from evalkit.benchmarks.divergence.names import TopK
from evalkit.core.errors import BenchmarkError, ConfigError

DEMO = {
    "questions_file": str(REPO / "data" / "arena_hard" / "demo" / "question.jsonl"),
    "questions_url": None,
    "held_out_file": str(REPO / "data" / "divergence" / "held_out.jsonl"),
    "top_k": 2,
}


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="did you mean top_k"):
        DivergenceSettings.from_dict({"topk": 5})
    with pytest.raises(ConfigError, match="top_k=0"):
        DivergenceSettings.from_dict({"top_k": 0})
    with pytest.raises(ConfigError, match="no such file"):
        get_adapter("divergence").validate(DEMO | {"held_out_file": "nope.jsonl"})


def test_prompts_are_the_questions_then_the_held_out_text() -> None:
    ps = prompts(DivergenceSettings.from_dict(DEMO))
    assert [p.doc_id for p in ps] == list(range(11))
    assert ps[0].source == "demo-0001" and ps[0].chat
    assert ps[6].source == "held_out:harbour" and not ps[6].chat


def test_parse_keeps_the_top_k_by_rank_and_drops_the_prompt_token_outside_it() -> None:
    # vLLM's shape: None first, then {id: {logprob, rank, decoded_token}} with the prompt's own token (rank 7 here)
    logprobs = [
        None,
        {"7": {"logprob": -5.0, "rank": 7}, "3": {"logprob": -0.5, "rank": 1}, "9": {"logprob": -1.5, "rank": 2}},
        {"4": {"logprob": -2.0, "rank": 2}, "1": {"logprob": -0.2, "rank": 1}},
    ]
    top = _parse(logprobs, 2, "q")
    assert top.ids.tolist() == [[3, 9], [1, 4]]
    assert top.logprobs.tolist() == [[-0.5, -1.5], [-0.2, -2.0]]
    with pytest.raises(BenchmarkError, match="position 2: 2 logprobs, expected 3"):
        _parse(logprobs, 3, "q")


def test_score_turns_the_stored_output_into_samples(tmp_path: Path) -> None:
    out = tmp_path / SUBDIR / OUTPUT_FILE
    out.parent.mkdir(parents=True)
    top = TopK(np.array([[5, 6], [6, 5]]), np.array([[-0.1, -2.5], [-0.3, -1.4]]))
    rows = [
        {"doc_id": p.doc_id, "source": p.source, "prompt_hash": f"h{p.doc_id}", "positions": 2, "topk": top.encode()}
        for p in prompts(DivergenceSettings.from_dict(DEMO))
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    adapter = get_adapter("divergence")
    ctx = RunContext(endpoint=None, work_dir=tmp_path, settings=adapter.parse_settings(DEMO))
    result = adapter.score(ctx)
    assert len(result.samples) == 11 and result.samples[3].prompt_hash == "h3"
    assert TopK.decode(result.samples[0].response).ids.tolist() == [[5, 6], [6, 5]]
    assert {s.metric: s.value for s in result.scores} == {"prompts": 11.0, "positions": 22.0}
    assert not any(s.is_primary for s in result.scores)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    with pytest.raises(BenchmarkError, match="10 prompts that are not the configured 11"):
        get_adapter("divergence").score(ctx)
