"""An adaptive chunk through real lm-eval: the `--samples` argument render_command writes makes lm-eval run exactly
the chunk's documents (lm-eval's own `dummy` model answers, so no server is needed; a toy task on local data).
`pytest -m integration tests/integration/test_adaptive_chunk_real.py`, ~20 s of CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.benchmarks.base import Endpoint
from evalkit.benchmarks.lm_eval.command import render_command
from evalkit.benchmarks.lm_eval.settings import LmEvalRun, LmEvalSuiteSettings

pytestmark = pytest.mark.integration

TASK = """task: toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
"""


def test_lm_eval_runs_exactly_the_chunks_documents(tmp_path: Path) -> None:
    data = tmp_path / "toy.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"{i} + 1 =", "choices": ["a", "b", "c"], "label": i % 3}) + "\n" for i in range(30)
        )
    )
    (tmp_path / "toy_mc.yaml").write_text(TASK.format(data=data))
    run = LmEvalRun(name="toy", tasks=["toy_mc"])
    endpoint = Endpoint("http://127.0.0.1:1/v1", "demo", "unused", 2048)
    argv = render_command(
        run,
        LmEvalSuiteSettings(runs=[run]),
        endpoint=endpoint,
        output_dir=tmp_path / "out",
        samples={"toy_mc": [17, 2, 5]},
    )
    chunk = argv[argv.index("--samples") : argv.index("--samples") + 2]
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "dummy", "--tasks", "toy_mc"]
    cmd += ["--include_path", str(tmp_path), *chunk, "--output_path", str(tmp_path / "out"), "--log_samples"]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (samples,) = (tmp_path / "out").rglob("samples_toy_mc_*.jsonl")
    assert sorted(json.loads(line)["doc_id"] for line in samples.read_text().splitlines()) == [2, 5, 17]
