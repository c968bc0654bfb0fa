"""`evalkit compare --lm-eval-runs`: lm-eval --log_samples folders made elsewhere, paired like evalkit's cells
(recorded lm-eval output; the real-process test is tests/integration/test_compare_lm_eval_runs.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixture_store import FIXTURES

from evalkit.cli import main


def _variant(src: Path, dst: Path, flip: int) -> None:
    """A copy of a recorded run whose first `flip` right documents are wrong."""
    shutil.copytree(src, dst)
    for path in dst.glob("**/samples_*.jsonl"):
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        done = 0
        for line in lines:
            if done < flip and line.get("acc") == line.get("acc_norm") == 1.0:
                line["acc"], line["acc_norm"], done = 0.0, 0.0, done + 1
        path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_two_lm_eval_folders_are_compared_document_by_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = FIXTURES / "v1_hellaswag" / "demo"
    shutil.copytree(src, tmp_path / "runs" / "base")
    _variant(src, tmp_path / "runs" / "w4a16", flip=1)
    rc = main(
        [
            "compare",
            "--lm-eval-runs",
            str(tmp_path / "runs" / "base"),
            str(tmp_path / "runs" / "w4a16"),
            "--results",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    table = pd.read_parquet(tmp_path / "out" / "compare" / "comparisons.parquet")
    row = table[(table["format"] == "w4a16") & (table["task"] == "hellaswag")].iloc[0]
    assert row["flips_down"] == 1 and row["flips_up"] == 0 and row["baseline_format"] == "bf16"
    assert "w4a16" in capsys.readouterr().out


def test_a_folder_without_lm_eval_output_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    shutil.copytree(FIXTURES / "v1_hellaswag" / "demo", tmp_path / "base")
    assert (
        main(
            [
                "compare",
                "--lm-eval-runs",
                str(tmp_path / "base"),
                str(tmp_path / "empty"),
                "--results",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert f"--lm-eval-runs {tmp_path / 'empty'}" in capsys.readouterr().err
