"""The study grid's plan, rendered once per test session by the real command: `evalkit sweep --dry-run --json`.

3 models x 4 formats x the 5 study benchmarks, server=gpu, launcher=slurm with a site's partition and account.
Nothing here needs Slurm, GPUs or network: the JSON dry run neither runs `sbatch --test-only` nor probes the machine.
Results and job folders go to a fresh temporary directory (every cell is missing, so every job is submitted), and the
document's machine paths are placeholders, so the text is the same in any checkout.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from paths import REPO

ROOT = REPO
MODELS = ["llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.1-405b-instruct"]
FORMATS = ["bf16", "fp8", "w8a8", "w4a16"]
BENCHMARKS = ["leaderboard_v1", "leaderboard_v2", "arena_hard", "humaneval", "ruler"]
SITE = ["hydra.launcher.partition=gpu", "hydra.launcher.account=llm-eval"]

OVERRIDES = [
    f"model={','.join(MODELS)}",
    f"format={','.join(FORMATS)}",
    f"benchmark={','.join(BENCHMARKS)}",
    "server=gpu",
    "launcher=slurm",
    "sweep=study",
    *SITE,
]

JUDGE_KEY_ENV = "OPENAI_API_KEY"
"""Arena-Hard's judge key variable (conf/benchmarks/arena_hard.yaml): a dummy value, so no check can depend on
whether the machine running the tests has one. The plan must never show it."""
DUMMY_KEY = "sk-dummy-key-for-the-plan-test"


@functools.lru_cache(maxsize=1)
def render() -> tuple[str, dict[str, Any]]:
    """(stdout of the dry run, its parsed document)."""
    from evalkit.cli import main

    tmp = Path(tempfile.mkdtemp(prefix="evalkit-study-plan-"))
    out = io.StringIO()
    old_cwd, old_key = os.getcwd(), os.environ.get(JUDGE_KEY_ENV)
    os.environ[JUDGE_KEY_ENV] = DUMMY_KEY
    os.chdir(ROOT)  # relative config paths (data/, .cache/) start at the project, as for a user
    try:
        argv = ["sweep", "--dry-run", "--json", *OVERRIDES, f"paths.results={tmp}/results", f"paths.jobs={tmp}/jobs"]
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            # exit 2 when the machine lacks prefetched data (reported in `checks`); the plan is printed either way
            main(argv)
    finally:
        os.chdir(old_cwd)
        if old_key is None:
            os.environ.pop(JUDGE_KEY_ENV, None)
        else:
            os.environ[JUDGE_KEY_ENV] = old_key
    text = out.getvalue()
    return text, json.loads(text)


def jobs_of(doc: dict[str, Any], model: str | None = None) -> list[dict[str, Any]]:
    return [j for j in doc["jobs"] if model is None or j["model"] == model]


def job(doc: dict[str, Any], model: str, fmt: str) -> dict[str, Any]:
    (found,) = [j for j in doc["jobs"] if j["model"] == model and j["format"] == fmt]
    return found


def cell(doc: dict[str, Any], model: str, fmt: str, benchmark: str) -> dict[str, Any]:
    (found,) = [c for c in job(doc, model, fmt)["cells"] if c["benchmark"] == benchmark]
    return found


def lm_eval_runs(doc: dict[str, Any], model: str, fmt: str, benchmark: str) -> dict[str, list[str]]:
    """Run name -> lm-eval argv of one cell."""
    return {r["name"]: r["argv"] for r in cell(doc, model, fmt, benchmark)["harness"]["runs"]}


def option(argv: list[str], name: str) -> str | None:
    """The value after `name` in an argv ("" for a flag without value), None when absent."""
    if name not in argv:
        return None
    i = argv.index(name)
    nxt = argv[i + 1] if i + 1 < len(argv) else ""
    return "" if nxt.startswith("--") else nxt
