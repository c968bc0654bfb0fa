"""An lm-eval `--output_path ... --log_samples` folder written outside evalkit, as the scores and samples an evalkit
cell of the same run commits (pure apart from reading the folder): the same parser (parse.read_run_outputs), RULER's
suite rows from its documents and the suite-level rows promoted, as the adapter does."""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.benchmarks.lm_eval.leaderboard import promote_benchmarks
from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs
from evalkit.benchmarks.lm_eval.ruler_scores import ruler_scores
from evalkit.core.records import SampleRecord, TaskScore


def read_log_samples(folder: Path) -> tuple[list[TaskScore], list[SampleRecord]]:
    """Scores and samples of the run under `folder` (lm-eval nests its files in a folder named after the model)."""
    scores, samples = read_run_outputs(RunFiles(folder))
    return promote_benchmarks(scores + ruler_scores(samples)), samples


def lm_eval_version(folder: Path) -> str:
    """The lm-eval version the run's results file names ("unknown" where it names none)."""
    found = RunFiles(folder).results()
    if found is None:
        return "unknown"
    doc = json.loads(found.read_text(encoding="utf-8"))
    return str(doc.get("lm_eval_version") or doc.get("versions", {}).get("lm_eval", "unknown"))
