"""Resumable generation never mixes samples made under different settings into one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.benchmarks.base import pin_generation_settings
from evalkit.core.errors import BenchmarkError


def test_first_run_records_then_same_settings_pass(tmp_path: Path) -> None:
    pin = tmp_path / "cell" / "generation.json"
    settings = {"model": "demo", "temperature": 0.2, "max_tokens": 512}
    pin_generation_settings(pin, settings, "humaneval: existing samples", "delete samples.jsonl")
    assert pin.is_file()
    pin_generation_settings(pin, dict(settings), "humaneval: existing samples", "delete samples.jsonl")


def test_changed_settings_are_refused_naming_the_keys(tmp_path: Path) -> None:
    pin = tmp_path / "generation.json"
    pin_generation_settings(pin, {"model": "demo", "temperature": 0.2, "seed": 1}, "x", "y")
    recorded = pin.read_text()
    with pytest.raises(BenchmarkError) as err:
        pin_generation_settings(pin, {"model": "demo", "temperature": 0.8, "seed": 2}, "arena_hard: answers", "rm it")
    assert "['seed', 'temperature']" in str(err.value) and "arena_hard: answers" in str(err.value)
    assert err.value.log == pin and "rm it" in (err.value.hint or "")
    assert pin.read_text() == recorded  # the record of what is on disk is never overwritten
