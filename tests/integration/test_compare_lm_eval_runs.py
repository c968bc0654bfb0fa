"""`evalkit compare --lm-eval-runs` on runs made by a real lm-eval process with --log_samples against real vLLM
servers (the demo checkpoint and its W4A16 format, one server at a time) gives the verdicts of the evalkit cells of
the same runs (`pytest -m integration tests/integration/test_compare_lm_eval_runs.py`). The W4A16 checkpoint is the
round-to-nearest one the W4A16 serving test builds (the same pack-quantized layout as GPTQ's, cached for the
session): FP8 is emulated on CPU, tens of times slower to serve, and its quantization would be one more here."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
from evalkit.benchmarks.lm_eval.offline import offline_env
from evalkit.benchmarks.lm_eval.settings import parse_settings
from evalkit.cli import main
from evalkit.core.cell import Cell, CheckpointRef
from evalkit.core.datasources import resolve_overrides
from evalkit.core.enums import CheckpointSource
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id
from evalkit.serve import ServerConfig, VLLMServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _run(server: VLLMServer, work: Path) -> tuple[Any, Path]:
    """The demo's winogrande (5-shot log-likelihoods, 5 documents) through evalkit's lm-eval adapter: the cell's
    result, and the folder the real lm-eval process wrote with --log_samples."""
    conf = yaml.safe_load((REPO / "conf" / "benchmarks" / "demo_leaderboard_v1.yaml").read_text())["settings"]
    demo = parse_settings(conf)
    runs = [
        replace(r, max_length=min(r.max_length, server.endpoint.max_model_len))
        for r in demo.runs
        if r.name == "winogrande"
    ]
    overrides = resolve_overrides(yaml.safe_load((REPO / "conf" / "data" / "demo.yaml").read_text()), REPO)
    adapter = LmEvalSuite()
    ctx = RunContext(
        endpoint=server.endpoint,
        work_dir=work,
        settings=adapter.parse_settings({"num_concurrent": demo.num_concurrent, "runs": [vars(r) for r in runs]}),
        data_overrides=overrides,
        env={"HF_HOME": str(work / "hf"), **offline_env()},
    )
    adapter.generate(ctx)
    folder = work / "lm_eval" / "winogrande"
    assert "--log_samples" in (folder / "command.sh").read_text()
    return adapter.score(ctx), folder


def test_lm_eval_runs_get_the_verdicts_of_the_evalkit_cells(
    demo_server: VLLMServer,
    demo_quantized: Callable[..., Path],
    demo_server_config: Callable[..., ServerConfig],
    tmp_path: Path,
) -> None:
    outputs = {"bf16": _run(demo_server, tmp_path / "bf16")}  # the session's server of the demo checkpoint
    config = demo_server_config(startup_timeout_s=900.0)
    with VLLMServer(config, demo_quantized("w4a16", algorithm="rtn"), log_path=tmp_path / "w4a16.log") as server:
        outputs["w4a16"] = _run(server, tmp_path / "w4a16")
    # the evalkit cells, committed as a job commits them
    store = ResultsStore.open_for_writing(tmp_path / "cells")
    prov = Provenance("0", "x", "0.4.13", "0.32.0", "/ckpt", "cfg")
    for fmt, (result, _) in outputs.items():
        now = datetime.now(timezone.utc)
        cell = Cell(
            "demo",
            fmt,
            "demo_leaderboard_v1",
            "demo_leaderboard_v1",
            CheckpointRef(CheckpointSource.path, "x"),
            "f" * 64,
        )
        store.commit_cell(cell, RunInfo(new_run_id(), now, now, "/x.log", prov), result.scores, result.samples)
    assert main(["compare", "--results", str(tmp_path / "cells")]) == 0
    # the same lm-eval folders, as a user who ran lm-eval by hand has them
    runs = []
    for fmt, (_, folder) in outputs.items():
        shutil.copytree(folder, tmp_path / "runs" / fmt)
        runs.append(str(tmp_path / "runs" / fmt))
    assert main(["compare", "--lm-eval-runs", *runs, "--results", str(tmp_path / "external")]) == 0
    cells = pd.read_parquet(tmp_path / "cells" / "compare" / "comparisons.parquet")
    external = pd.read_parquet(tmp_path / "external" / "compare" / "comparisons.parquet")
    cols = ["format", "task", "n_docs", "diff", "diff_lo", "diff_hi", "flips_down", "flips_up", "verdict"]
    a = cells[cells["task"] != "*"][cols].reset_index(drop=True)
    b = external[external["task"] != "*"][cols].reset_index(drop=True)
    assert list(a["task"]) == ["winogrande"] and a["n_docs"].iat[0] == 5
    pd.testing.assert_frame_equal(a, b)
    assert external.loc[external["task"] == "*", "verdict"].iat[0] == cells.loc[cells["task"] == "*", "verdict"].iat[0]
