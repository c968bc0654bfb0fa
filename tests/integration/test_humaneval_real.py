"""HumanEval+ end to end against the real demo model: vLLM serves it, generate samples, score them in the sandbox.

~1.5 minutes on 2 CPU cores (~45 s of it server start-up). The small fixture below starts its own server; it is
killed (whole process group) when the module ends, so only one server runs at a time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.benchmarks.base import Endpoint, RunContext
from evalkit.benchmarks.humaneval import adapter as he
from evalkit.benchmarks.humaneval.sandbox import Sandbox, SandboxError
from evalkit.util.hashing import sha256_text

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint(demo_server: Any) -> Endpoint:
    """The session's shared demo server (tests/integration/conftest.py): one server start for all such tests."""
    endpoint: Endpoint = demo_server.endpoint
    return endpoint


def test_generate_and_score_two_problems(endpoint: Endpoint, tmp_path: Path) -> None:
    try:
        Sandbox()
    except SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")
    settings = {
        "dataset": "humaneval_plus",
        "problems_file": str(REPO / "data" / "humaneval_plus_demo.jsonl"),
        "limit": 2,
        "n_samples": 2,
        "max_tokens": 256,  # the demo model rambles; keep the test short
    }
    bench = he.HumanEval()
    bench.validate(settings)
    ctx = RunContext(endpoint=endpoint, work_dir=tmp_path, settings=bench.parse_settings(settings))

    started = time.monotonic()
    bench.generate(ctx)
    print(f"\ngenerate: {time.monotonic() - started:.1f} s")
    samples = [json.loads(line) for line in (tmp_path / he.SAMPLES_FILE).read_text().splitlines()]
    assert sorted((s["task_id"], s["sample_index"]) for s in samples) == [
        (t, i) for t in ("HumanEvalDemo/0", "HumanEvalDemo/1") for i in range(2)
    ]
    assert all(s["mode"] == "chat" and isinstance(s["completion"], str) for s in samples)
    # evalplus's chat prompt: the template's assistant turn is opened with the response prefix and a code fence
    prompt = he.prompt_plan("auto", endpoint.tokenizer).render(
        he.load_problems(he.HumanEvalSettings.from_dict(settings))[0].prompt
    )
    assert prompt.startswith("<|im_start|>") and prompt.endswith("```python\n")
    assert {s["prompt_hash"] for s in samples if s["task_id"] == "HumanEvalDemo/0"} == {sha256_text(prompt)}

    started = time.monotonic()
    result = bench.score(RunContext(endpoint=None, work_dir=tmp_path, settings=ctx.settings))
    print(f"score: {time.monotonic() - started:.1f} s")
    for s in result.scores:
        print(s)
    assert [(s.task, s.metric) for s in result.scores] == [("humaneval", "pass@1"), ("humaneval_plus", "pass@1")]
    for score in result.scores:
        assert score.value is not None and 0.0 <= score.value <= 100.0 and score.n_samples == 2
    by_task = {(r.task, r.doc_id): r for r in result.samples}
    assert set(by_task) == {(t, d) for t in ("humaneval", "humaneval_plus") for d in (0, 1)}
    for record in result.samples:
        assert record.metrics["pass@1"] in (0.0, 0.5, 1.0) and record.metrics["n_samples"] == 2
        assert isinstance(record.response, str) and record.target
    rows = (tmp_path / he.RESULTS_FILE).read_text().splitlines()
    assert len(rows) == 4
