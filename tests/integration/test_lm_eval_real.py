"""The lm-eval adapter end to end: a real lm-eval harness process against a real vLLM server on the demo checkpoint,
reading the shipped offline data (`pytest -m integration tests/integration/test_lm_eval_real.py`, ~2 min on CPU)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polling
import pytest
import yaml
from vllm_metrics import metric_sum

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
from evalkit.benchmarks.lm_eval.offline import (
    expand_tasks,
    load_task_catalog,
    offline_env,
    render_override_tasks,
    write_override_tasks,
)
from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs
from evalkit.benchmarks.lm_eval.progress import RunProgress
from evalkit.benchmarks.lm_eval.settings import LmEvalSuiteSettings, parse_settings
from evalkit.core.datasources import resolve_overrides
from evalkit.core.errors import BenchmarkError
from evalkit.serve import VLLMServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _bench(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "conf" / "benchmarks" / f"{name}.yaml").read_text())["settings"]


def _overrides() -> dict[str, dict[str, str]]:
    return resolve_overrides(yaml.safe_load((REPO / "conf" / "data" / "demo.yaml").read_text()), REPO)


def test_demo_suites_read_only_shipped_data() -> None:
    """Every task of the demo suites is served from conf/data/demo.yaml, with every split it reads."""
    catalog = load_task_catalog()
    overrides = _overrides()
    for suite in ("demo_leaderboard_v1", "demo_leaderboard_v2"):
        for run in parse_settings(_bench(suite)).runs:
            files = render_override_tasks(run.tasks, catalog, overrides, run.num_fewshot)
            assert {f.removesuffix(".yaml") for f in files} == set(expand_tasks(run.tasks, catalog)), run.name


def test_overriding_one_subject_keeps_the_groups_other_members(tmp_path: Path) -> None:
    """lm-eval lets an include-path task replace the built-in one by name; the generated YAML must not re-declare
    the upstream tags, or this directory's one-subject tag list would replace the built-in 19-subject one."""
    from lm_eval.tasks import TaskManager

    files = render_override_tasks(["mmlu_llama_astronomy"], load_task_catalog(), _overrides())
    index = TaskManager(include_path=str(write_override_tasks(files, tmp_path))).task_index
    assert index["mmlu_llama_astronomy"].yaml_path == tmp_path / "mmlu_llama_astronomy.yaml"
    stem = index["mmlu_llama_stem_tasks"].tags
    assert len(stem) == 19 and "mmlu_llama_astronomy" in stem


def test_loglikelihood_and_generation_tasks_end_to_end(demo_server: Any, tmp_path: Path) -> None:
    endpoint = demo_server.endpoint
    demo = parse_settings(_bench("demo_leaderboard_v1"))
    # winogrande: 5-shot log-likelihoods, no chat template, BOS added; arc_challenge_llama: generation in the chat
    # template with Meta's gen_prefix. The shared test server may have a shorter context than the protocol's.
    runs = [
        replace(r, max_length=min(r.max_length, endpoint.max_model_len))
        for r in demo.runs
        if r.name in ("winogrande", "arc_challenge")
    ]
    settings = {"num_concurrent": demo.num_concurrent, "runs": [vars(r) for r in runs]}
    adapter = LmEvalSuite()
    ctx = RunContext(
        endpoint=endpoint,
        work_dir=tmp_path / "cell",
        settings=adapter.parse_settings(settings),
        data_overrides=_overrides(),
        env={"HF_HOME": str(tmp_path / "hf"), **offline_env()},
    )
    adapter.generate(ctx)
    result = adapter.score(ctx)

    primary = {s.task: s for s in result.scores if s.is_primary}
    assert set(primary) == {"winogrande", "arc_challenge_llama"}
    wino, arc = primary["winogrande"], primary["arc_challenge_llama"]
    assert (wino.metric, wino.n_samples) == ("acc", 5)
    assert (arc.metric, arc.filter, arc.n_samples) == ("exact_match", "", 5)  # the 3-option question is dropped
    for score in primary.values():
        assert score.value is not None and 0 <= score.value <= 100 and score.stderr is not None

    by_task: dict[str, list] = {}
    for s in result.samples:
        by_task.setdefault(s.task, []).append(s)
    assert {t: len(v) for t, v in by_task.items()} == {"winogrande": 5, "arc_challenge_llama": 5}
    for s in by_task["winogrande"]:
        resp = json.loads(s.response)
        assert len(resp["loglikelihoods"]) == 2 and all(ll < 0 for ll in resp["loglikelihoods"])
        assert "choices" not in resp  # multiple-input task: the options are the two contexts
        assert s.metrics["acc"] in (0.0, 1.0)
    assert all(set(s.metrics) == {"exact_match"} and s.prompt_hash for s in by_task["arc_challenge_llama"])
    # the command each run used is kept next to its log, for reruns by hand
    assert (ctx.work_dir / "lm_eval" / "arc_challenge" / "command.sh").read_text().count("--apply_chat_template") == 1

    # Both runs shared one harness process (lm-eval started once). The later run, rerun by hand from its
    # command.sh as a process of its own, must send the same requests: same documents, prompts (few-shot draws,
    # chat template) and targets. (Responses may differ in the last bits: vLLM on CPU is not batch-invariant.)
    root = ctx.work_dir / "lm_eval"
    later = json.loads((root / "batch.json").read_text())["runs"][-1]["name"]
    assert (root / "harness.log").read_text().count("lm-eval imported") == 1
    alone = tmp_path / "alone"
    alone.mkdir()
    command = (root / later / "command.sh").read_text()
    subprocess.run(
        ["bash", "-c", command.replace(str(root / later / "output"), str(alone / "output"))],
        cwd=alone,
        env={**os.environ, **ctx.env},
        check=True,
        capture_output=True,
    )
    _, alone_samples = read_run_outputs(RunFiles(alone))
    _, shared_samples = read_run_outputs(RunFiles(root / later))
    assert len(shared_samples) == 5
    requests = sorted((s.task, s.doc_id, s.prompt_hash, s.target) for s in shared_samples)
    assert sorted((s.task, s.doc_id, s.prompt_hash, s.target) for s in alone_samples) == requests


# ------------------------------------------------------------------------------ resuming an interrupted cell

RESUME_DOCS = 12


@pytest.fixture(scope="module")
def uncached_server(
    demo_checkpoint: Path, demo_server_config: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMServer]:
    """The demo's server without prefix caching. With it, the reference run leaves the resumed run's prompts in the
    cache, and the resumed run computes only each prompt's tail where the reference computed its whole question:
    another sum order, where a near-tie in greedy decoding can go the other way (the likely cause of GSM8K
    document 9 of 12 differing on a fresh-clone CI run, long after the kill). Without it, and with one request in
    flight on an idle server, a request is computed the same way in both runs."""
    log_path = tmp_path_factory.mktemp("uncached_server") / "server.log"
    config = demo_server_config(extra_args=["--no-enable-prefix-caching"], startup_timeout_s=900.0)
    with VLLMServer(config, demo_checkpoint, log_path=log_path) as server:
        yield server


def _in_flight(server: VLLMServer) -> float:
    """Requests the server is running or holding (vLLM's own gauges)."""
    return metric_sum(server.endpoint.base_url, "vllm:num_requests_running", "vllm:num_requests_waiting")


def _resume_ctx(server: VLLMServer, tmp_path: Path, name: str) -> RunContext[LmEvalSuiteSettings]:
    """Winogrande (0-shot log-likelihoods), then GSM8K (8-shot generation) on 12 numbered shipped questions (no two
    send the same request), one request in flight: vLLM on CPU is not batch-invariant, and a resumed run sends
    fewer requests at once than an uninterrupted one."""
    docs = [json.loads(line) for line in (REPO / "data/openai/gsm8k/main/test.jsonl").read_text().splitlines()]
    numbered = [{**d, "question": f"Problem {i + 1}. {d['question']}"} for i, d in enumerate(docs * RESUME_DOCS)]
    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text("".join(json.dumps(d) + "\n" for d in numbered[:RESUME_DOCS]))
    runs = [
        {"name": "wino", "tasks": ["winogrande"], "num_fewshot": 0, "add_bos_token": True, "max_length": 4096},
        {
            "name": "gsm",
            "tasks": ["gsm8k_llama"],
            "num_fewshot": 8,
            "apply_chat_template": True,
            "fewshot_as_multiturn": True,
            "max_length": 4096,
            "demo_max_gen_toks": 96,
        },
    ]
    return RunContext(
        endpoint=server.endpoint,
        work_dir=tmp_path / name,
        settings=LmEvalSuite().parse_settings({"num_concurrent": 1, "runs": runs}),
        data_overrides=_overrides() | {"openai/gsm8k:main": {"test": str(gsm)}},
        env={"HF_HOME": str(tmp_path / "hf"), **offline_env()},
        progress_dir=tmp_path / name / "progress" / "cell-id",
    )


def _rows(result: Any) -> tuple[list[Any], list[Any]]:
    scores = sorted((s.task, s.metric, s.filter, s.value, s.stderr, s.n_samples) for s in result.scores)
    samples = sorted(
        (s.task, s.doc_id, s.prompt_hash, s.target, s.response, sorted(s.metrics.items())) for s in result.samples
    )
    return scores, samples


def test_a_harness_killed_mid_run_resumes_with_its_finished_run_and_cached_requests(
    uncached_server: VLLMServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of the harness half-way through its second run (nothing flushed on the way out): the next attempt
    runs only that run, sends only the requests lm-eval's cache did not hold, and gives the uninterrupted rows.
    The demo's server in the CPU's native dtype (float32 without native bf16), fast enough on either CPU kind for a
    run long enough to be killed in the middle of; without prefix caching (`uncached_server`)."""
    adapter = LmEvalSuite()
    reference = _resume_ctx(uncached_server, tmp_path, "reference")
    adapter.generate(reference)
    expected = _rows(adapter.score(reference))

    ctx = _resume_ctx(uncached_server, tmp_path, "resumed")
    assert ctx.progress_dir is not None
    gsm_progress = ctx.progress_dir / "gsm"  # one folder per identity of the run: count over any
    failed: list[BaseException] = []

    def attempt() -> None:
        try:
            adapter.generate(ctx)
        except BenchmarkError as err:
            failed.append(err)

    first = threading.Thread(target=attempt)
    first.start()

    def cached() -> int:
        return sum(RunProgress(d).cached_requests() for d in gsm_progress.glob("*"))

    polling.until("two GSM8K answers cached", lambda: cached() >= 2 or not first.is_alive(), timeout=600, every=0.2)
    batch = ctx.work_dir / "lm_eval" / "batch.json"
    harness = subprocess.run(["pgrep", "-f", f"runner {batch}"], capture_output=True, text=True).stdout.split()
    assert len(harness) == 1, "the run ended before it could be interrupted"
    os.kill(int(harness[0]), signal.SIGKILL)
    first.join()
    # the killed harness's last request runs on in the server: a resumed request batched with it would be computed
    # differently (vLLM on CPU is not batch-invariant), and a busy machine stretches the overlap
    polling.until("the server idle again", lambda: _in_flight(uncached_server) == 0, timeout=600, every=0.5)
    assert failed and "did not finish" in str(failed[0])
    at_kill = cached()
    assert 2 <= at_kill < RESUME_DOCS

    with caplog.at_level(logging.INFO, logger="evalkit.lm_eval"):
        adapter.generate(ctx)
    assert f"resuming resumed: 1 of 2 runs done, {at_kill} cached requests" in caplog.text
    assert [r["name"] for r in json.loads(batch.read_text())["runs"]] == ["gsm"]
    gsm_log = (ctx.work_dir / "lm_eval" / "gsm" / "lm_eval.log").read_text()
    assert f"Cached requests: {at_kill}, Requests remaining: {RESUME_DOCS - at_kill}" in gsm_log
    assert _rows(adapter.score(ctx)) == expected
