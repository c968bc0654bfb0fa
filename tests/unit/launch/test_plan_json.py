"""`evalkit sweep --dry-run --json`: the study grid's plan is pinned by golden files (one per model, plus the sweep's
submissions), and the document's rules (stdout only JSON, no machine paths, no secrets) are checked on it.

Regenerate after an intended change: EVALKIT_UPDATE_GOLDEN=1 python -m pytest tests/unit/launch/test_plan_json.py, then
review `git diff tests/unit/golden/study/`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from golden import check_golden
from paths import GOLDEN as GOLDEN_DIR
from study_plan import BENCHMARKS, DUMMY_KEY, FORMATS, JUDGE_KEY_ENV, MODELS, ROOT, job, jobs_of, render

from evalkit.cli import main
from evalkit.launch.plan_json import Placeholders, plan_document, render_plan_json

GOLDEN = GOLDEN_DIR / "study"


def _text(value: Any) -> str:
    return json.dumps(value, indent=1) + "\n"


@pytest.mark.parametrize("model", MODELS)
def test_study_grid_golden_per_model(model: str) -> None:
    _, doc = render()
    check_golden(GOLDEN / f"{model}.json", _text(jobs_of(doc, model)))


def test_study_grid_golden_submissions() -> None:
    _, doc = render()
    sweep = {k: v for k, v in doc.items() if k not in ("jobs", "placeholders", "checks")}
    check_golden(GOLDEN / "sweep.json", _text({**sweep, "jobs": [j["name"] for j in doc["jobs"]]}))


def test_every_job_and_cell_of_the_grid_is_planned() -> None:
    _, doc = render()
    assert [(j["model"], j["format"]) for j in doc["jobs"]] == [(m, f) for m in MODELS for f in FORMATS]
    # RULER is opt-in for 405B (the study did not run it): its jobs leave it out and say so
    for j in doc["jobs"]:
        skipped = ["ruler"] if j["model"] == "llama-3.1-405b-instruct" else []
        assert [c["benchmark"] for c in j["cells"]] == [b for b in BENCHMARKS if b not in skipped]
        assert [s["benchmark"] for s in j["skipped_benchmarks"]] == skipped
    # every job is in exactly one eval submission, with that submission's script
    for j in doc["jobs"]:
        assert j["slurm"]["script"].startswith("#!/bin/bash") and "#SBATCH --partition=gpu" in j["slurm"]["script"]
        assert "#SBATCH --account=llm-eval" in j["slurm"]["script"]
    assert doc["submissions"][-1]["kind"] == "aggregate" and doc["submissions"][-1]["after"] == "all"


def test_stdout_is_one_json_document_without_machine_paths_or_secrets() -> None:
    text, doc = render()
    assert text.startswith("{") and text.endswith("}\n")
    assert doc["placeholders"]["<project>"] == str(ROOT)
    body = json.dumps({k: v for k, v in doc.items() if k != "placeholders"})
    for path in doc["placeholders"].values():
        assert path not in body, path
    assert str(ROOT) not in body and sys.executable not in body and "/tmp/evalkit-study-plan" not in body
    # the judge key's variable is named, its value never shown
    assert DUMMY_KEY not in text
    arena = job(doc, "llama-3.1-8b-instruct", "bf16")["cells"][BENCHMARKS.index("arena_hard")]
    assert arena["harness"]["settings"]["judge_api_key_env"] == JUDGE_KEY_ENV


def test_the_server_command_is_the_renderers() -> None:
    """The plan's vLLM command comes from evalkit.serve.render (golden-tested in serve/): same flags, same order."""
    _, doc = render()
    argv = job(doc, "llama-3.1-405b-instruct", "fp8")["server"]["argv"]
    assert argv[:3] == ["<python>", "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--port") + 1] == "<port>"
    assert argv[argv.index("--model") + 1] == "neuralmagic/Meta-Llama-3.1-405B-Instruct-FP8-dynamic"


def test_json_needs_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--json", "model=llama-3.1-8b-instruct"]) == 2
    assert "--json renders the plan of a dry run" in capsys.readouterr().err


def test_builder_is_pure_and_a_local_sweep_has_no_slurm(tmp_path: Path) -> None:
    """plan_document from JobPlans alone (no Hydra app, no store beyond an empty one): a local sweep has no sbatch
    part, and the demo cell names its shipped files."""
    from evalkit.benchmarks.lm_eval.offline import TaskEntry
    from evalkit.pipeline.compose import compose_job
    from evalkit.pipeline.plan import plan_job
    from evalkit.results.store import ResultsStore

    cfg = compose_job(["benchmark=[smoke_loglikelihood]", f"paths.results={tmp_path}/r", f"paths.jobs={tmp_path}/j"])
    plan = plan_job(cfg, ResultsStore(tmp_path / "r"), check_adapters=False)
    catalog = {"winogrande": TaskEntry("winogrande", "task", None, dataset=_winogrande())}
    ph = Placeholders(project=str(ROOT), python="/venv/bin/python", jobs=str(tmp_path / "j"), results="")
    doc = plan_document([plan], None, placeholders=ph, catalog=catalog)
    assert render_plan_json(doc) == render_plan_json(plan_document([plan], None, placeholders=ph, catalog=catalog))
    assert doc["launcher"] == "local" and doc["submissions"] == [] and doc["jobs"][0]["slurm"] is None
    (cell,) = doc["jobs"][0]["cells"]
    assert cell["data_sources"] == [
        {
            "dataset": "allenai/winogrande:winogrande_xl",
            "source": "local",
            "files": {
                "train": "data/allenai/winogrande/winogrande_xl/train.jsonl",
                "validation": "data/allenai/winogrande/winogrande_xl/validation.jsonl",
            },
        }
    ]
    (run,) = cell["harness"]["runs"]
    assert run["argv"][0] == "<python>" and "<jobs>/demo/smollm2-135m-instruct.bf16/smoke_loglikelihood/lm_eval/" \
        "winogrande/tasks" in run["argv"]  # fmt: skip


def _winogrande() -> Any:
    from evalkit.core.datasources import DatasetRef

    return DatasetRef("allenai/winogrande", "winogrande_xl")


def test_divergence_and_perf_cells_name_their_data_sources() -> None:
    from evalkit.core.config import to_object
    from evalkit.launch.plan_json import data_sources
    from evalkit.pipeline.compose import compose_job

    cfg = to_object(compose_job(["model=llama-3.1-8b-instruct", "format=bf16", "benchmark=[divergence,perf]"]))
    div = data_sources(cfg, "divergence", None)
    assert [d["dataset"] for d in div] == ["arena_hard/questions", "divergence/held_out"]
    assert div[0]["files"] == {"file": "data/arena_hard/v0.1/question.jsonl"} and "arena-hard-auto" in div[0]["url"]
    assert data_sources(cfg, "perf", None) == [
        {"dataset": "synthetic prompts (vllm bench serve, random dataset)", "source": "generated"}
    ]
