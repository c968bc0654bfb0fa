"""The shared generate loop (arena_hard and humaneval run their requests through it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from evalkit.benchmarks import generation
from evalkit.core.errors import BenchmarkError
from evalkit.util.http import Client, RetryPolicy

log = logging.getLogger("evalkit.benchmarks.family")


def test_pending_logs_under_the_familys_logger(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    out = generation.Outputs("fam", "answers", tmp_path / "a.jsonl", log)
    with caplog.at_level(logging.INFO):
        assert generation.pending(out, 3, 2) and not generation.pending(out, 0, 5)
    assert [(r.name, r.message) for r in caplog.records] == [
        ("evalkit.benchmarks.family", "fam: 3 answers to generate (2 already there)"),
        ("evalkit.benchmarks.family", "fam: 0 answers to generate (5 already there)"),
    ]


def test_every_item_gets_a_request_and_a_failure_names_the_file_and_the_resume(tmp_path: Path) -> None:
    out = generation.Outputs("fam", "samples", tmp_path / "s.jsonl", log, phase="sample generation")
    seen: list[int] = []
    finished: list[bool] = []

    def one(http: Client, item: int) -> None:
        assert isinstance(http, Client)
        seen.append(item)

    policy = RetryPolicy(retries=0)
    generation.generate(out, [1, 2, 3], one, base_url="http://x/v1", policy=policy, concurrency=2)
    assert sorted(seen) == [1, 2, 3]

    def broken(http: Client, item: int) -> None:
        raise RuntimeError("boom")

    with pytest.raises(BenchmarkError) as err:
        generation.generate(
            out, [1], broken, base_url="http://x/v1", policy=policy, concurrency=1, finish=lambda: finished.append(True)
        )
    assert err.value.what == "fam: sample generation failed: RuntimeError('boom')"
    assert err.value.log == tmp_path / "s.jsonl" and err.value.hint is not None and "rerun generate" in err.value.hint
    assert finished == [True]  # the last snapshot is taken even when a request failed
