"""Calibration data: the shipped file, both formats, seeded selection, errors that point at the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.checkpoints.calibration import load_samples, resolve_calibration_file, select_samples
from evalkit.core.config import DEFAULT_CALIBRATION_FILE
from evalkit.core.errors import CheckpointError


def test_shipped_file_is_small_varied_chat() -> None:
    path = resolve_calibration_file(DEFAULT_CALIBRATION_FILE)
    assert path.stat().st_size < 200_000
    samples = load_samples(path)
    assert len(samples) >= 200
    assert all(isinstance(s, list) and s[-1]["role"] == "assistant" for s in samples)
    assert sum(len(s) > 2 for s in samples) >= 10, "some multi-turn / system-prompt conversations"
    firsts = [s[0]["content"] for s in samples]
    assert len(set(firsts)) == len(firsts), "no duplicate conversations"


def test_relative_paths_resolve_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_calibration_file(DEFAULT_CALIBRATION_FILE).is_file()
    (tmp_path / "mine.txt").write_text("one\n\ntwo\n")
    assert resolve_calibration_file("mine.txt") == (tmp_path / "mine.txt").resolve()


def test_missing_file_names_the_places_looked_at() -> None:
    with pytest.raises(CheckpointError, match="looked at"):
        resolve_calibration_file("data/calibration/nope.jsonl")


def test_text_format_splits_on_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("First paragraph\nstill first.\n\n\nSecond.\n\n  \nThird.\n")
    assert load_samples(path) == ["First paragraph\nstill first.", "Second.", "Third."]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "c.jsonl:2: not JSON"),
        ('{"text": "x"}', "c.jsonl:2: expected an object with a non-empty 'messages' list"),
        ('{"messages": [{"role": "user"}]}', "c.jsonl:2: every message needs"),
    ],
)
def test_bad_jsonl_points_at_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' + line + "\n")
    with pytest.raises(CheckpointError, match=message):
        load_samples(path)


def test_unknown_suffix_and_empty_file_are_errors(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("a,b\n")
    with pytest.raises(CheckpointError, match="unknown format"):
        load_samples(tmp_path / "c.csv")
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(CheckpointError, match="no samples"):
        load_samples(tmp_path / "e.txt")


def test_selection_is_seeded_and_capped() -> None:
    samples: list[str | list[dict[str, str]]] = [f"s{i}" for i in range(50)]
    a, b = select_samples(samples, 10, seed=0), select_samples(samples, 10, seed=0)
    assert a == b and len(a) == 10 and len(set(a)) == 10
    assert select_samples(samples, 10, seed=1) != a
    everything = select_samples(samples, 512, seed=0)
    assert sorted(everything) == sorted(samples)
