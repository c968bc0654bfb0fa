"""The cost estimate before submission (evalkit.launch.estimate): the study grid's plan carries per-cell tokens and
GPU-hours that agree with a hand computation, every job's time limit holds its estimate, and a limit Slurm refuses
comes with the fix. The study plan is rendered by the real command (`study_plan.render`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

import pytest
from study_plan import cell, job, jobs_of, render

from evalkit.core.errors import ConfigError, SubmissionError
from evalkit.core.resources import JobResources
from evalkit.launch.base import Request
from evalkit.launch.estimate import (
    CellEstimate,
    JobEstimate,
    RunEstimate,
    check_attempts,
    limit_note,
    render_text,
    with_time_limit,
)

# Llama-3.1-8B (config.json): 8.03e9 parameters, 32 layers, hidden 4096, 8 KV heads of 128
P, LAYERS, HIDDEN, KV_HEADS, HEAD_DIM = 8.03e9, 32, 4096, 8, 128
# H100 SXM datasheet, dense: BF16 989.4 TFLOP/s, 3.35 TB/s; assumed 30% of peak in prefill, 60% of the bandwidth
H100_BF16, H100_BW, U_PREFILL, U_BW = 989.4e12, 3.35e12, 0.3, 0.6
KV_PER_TOKEN = 2 * LAYERS * KV_HEADS * HEAD_DIM * 2  # K and V, bf16


def _decode_s(requests: int, prompt: float, budget: int, batch: int, weight_bytes: float = 2.0) -> float:
    memory = requests * budget * (P * weight_bytes / batch + KV_PER_TOKEN * (prompt + budget / 2)) / (H100_BW * U_BW)
    compute = 2 * P * requests * budget / (H100_BF16 * U_PREFILL)
    return max(memory, compute)


def test_ruler_128k_for_8b_bf16_matches_a_hand_computation() -> None:
    _, doc = render()
    est = cell(doc, "llama-3.1-8b-instruct", "bf16", "ruler")["estimate"]["runs"]["ruler_128k"]
    # 13 tasks x 500 documents, each the length less its answer budget: 8 needle tasks answer in 128 tokens, variable
    # tracking 30, common words 120, frequent words 50, the two QA tasks 32 (lm-eval's ruler/*.yaml)
    budgets = {128: 8, 30: 1, 120: 1, 50: 1, 32: 2}
    prompts = {131072 - g: n for g, n in budgets.items()}
    prefill = 500 * sum(n * p for p, n in prompts.items())
    assert est["requests"] == 6500
    assert est["prefill_tokens"] == prefill == 851_324_000
    assert est["decode_tokens"] == 500 * sum(n * g for g, n in budgets.items())
    flops = 2 * P * prefill + 2 * LAYERS * HIDDEN * 500 * sum(n * p**2 for p, n in prompts.items())
    assert flops == pytest.approx(4.3e19, rel=0.01)  # issue 18's figure: 12 H100-hours at peak
    seconds = flops / (H100_BF16 * U_PREFILL) + sum(_decode_s(500 * n, 131072 - g, g, 32) for g, n in budgets.items())
    assert est["gpu_hours"] == pytest.approx(seconds / 3600, rel=2e-3)  # the plan rounds to 3 digits


def test_gsm8k_for_8b_bf16_matches_a_hand_computation() -> None:
    _, doc = render()
    est = cell(doc, "llama-3.1-8b-instruct", "bf16", "leaderboard_v1")["estimate"]["runs"]["gsm8k"]
    # 1319 test questions, 8 shots of ~170 tokens on ~110 of question and template, answers within 1024 tokens, 32 in
    # flight (conf/benchmarks/leaderboard_v1.yaml)
    prompt = 110 + 8 * 170
    assert (est["requests"], est["prefill_tokens"], est["decode_tokens"]) == (1319, 1319 * prompt, 1319 * 1024)
    prefill_s = (2 * P * 1319 * prompt + 2 * LAYERS * HIDDEN * prompt**2 * 1319) / (H100_BF16 * U_PREFILL)
    hours = (prefill_s + _decode_s(1319, prompt, 1024, 32)) / 3600
    assert est["gpu_hours"] == pytest.approx(hours, rel=2e-3)


def test_no_job_of_the_study_grid_exceeds_its_time_limit() -> None:
    _, doc = render()
    for j in jobs_of(doc):
        e = j["estimate"]
        assert e["estimated"], j["name"]
        assert e["wall_hours"] * 60 * e["margin"] <= e["time_limit_min"], j["name"]
        assert e["time_limit_min"] >= e["configured_limit_min"]
        # the limit is what the job asks Slurm for
        assert j["resources"]["timeout_min"] == e["time_limit_min"]
        assert f"#SBATCH --time={e['time_limit_min']}\n" in j["slurm"]["script"], j["name"]
        cells_hours = sum(c["estimate"]["gpu_hours"] for c in j["cells"])
        assert e["gpu_hours"] == pytest.approx(cells_hours + e["gpus"] * e["startup_min"] / 60, rel=0.01)
    assert doc["estimate"]["gpu_hours"] == pytest.approx(
        sum(j["estimate"]["gpu_hours"] for j in jobs_of(doc)), rel=0.01
    )
    assert doc["estimate"]["jobs_not_estimated"] == 0 and doc["estimate"]["unpriced_jobs"] == 0


def test_ruler_raises_the_8b_limit_and_prices_on_the_jobs_gpus() -> None:
    _, doc = render()
    j = job(doc, "llama-3.1-8b-instruct", "bf16")["estimate"]
    # 240 configured minutes hold a few suites, not RULER's ~65 H100-hours
    assert j["configured_limit_min"] == 240 and j["time_limit_min"] > 60 * 60
    assert (j["gpu_type"], j["gpus"], j["gpu_type_assumed"]) == ("H100", 1, False)
    assert j["usd"] == pytest.approx(j["wall_hours"] * 3.29, rel=0.01)  # 1x H100 at the study's list price
    big = job(doc, "llama-3.1-70b-instruct", "bf16")["estimate"]
    assert big["gpus"] == 4 and big["usd"] == pytest.approx(big["wall_hours"] * 12.36, rel=0.01)


def test_ruler_for_405b_is_opt_in() -> None:
    _, doc = render()
    for j in jobs_of(doc, "llama-3.1-405b-instruct"):
        assert "ruler" not in [c["benchmark"] for c in j["cells"]]
        assert [s["benchmark"] for s in j["skipped_benchmarks"]] == ["ruler"]
    assert all(not j["skipped_benchmarks"] for j in jobs_of(doc, "llama-3.1-8b-instruct"))


def _estimate(**kw: Any) -> JobEstimate:
    base = dict(
        gpu_type="H100", gpu_type_assumed=False, gpus=1, cells=(), startup_min=20.0, margin=1.5,
        configured_limit_min=240, usd_per_hour=3.29, prices="2024-10-28",
    )  # fmt: skip
    return JobEstimate(**{**base, **kw})


def test_time_limit_is_the_estimate_with_margin_rounded_up_and_never_below_the_configured() -> None:
    short = _estimate()  # 20 min start-up x 1.5 = 30 min: the configured 240 stays
    assert (short.needed_min, short.time_limit_min, short.raised) == (30, 240, False)
    assert limit_note("m.f", short) == ""
    r = JobResources(1, 1, 8, 64, 240, 1, 1)
    assert with_time_limit(r, short) == r and with_time_limit(r, "CPU job") == r
    long = _estimate(startup_min=200.0)  # 300 min
    assert (long.needed_min, long.time_limit_min) == (300, 300)
    assert with_time_limit(r, long).timeout_min == 300


def test_a_limit_capped_at_the_clusters_runs_in_attempts_that_must_fit_the_requeues() -> None:
    """A job the cluster cannot hold in one limit (70B RULER: days) gets the partition's limit and runs in
    attempts, each paying the start-up again; the plan refuses it when max_num_timeout requeues cannot finish it."""
    ruler = CellEstimate("ruler", (RunEstimate("ruler", 1, 0.0, 0.0, 100 * 3600.0),), 1, (), ())  # 100 h of work
    capped = _estimate(cells=(ruler,), max_limit_min=2880)  # 48 h, the usual partition limit
    # needed: (20 min + 100 h) x 1.5 = 9030 min; an attempt holds 2880 - 30 (its start-up) = 2850 min of work
    assert (capped.needed_min, capped.time_limit_min, capped.attempts) == (9030, 2880, 4)
    assert with_time_limit(JobResources(1, 1, 8, 64, 240, 1, 1), capped).timeout_min == 2880
    assert "4 attempts: capped at the cluster's 2880 min" in limit_note("m.bf16", capped)
    check_attempts("m.bf16", capped, max_num_timeout=3)  # 3 requeues: 4 attempts, enough
    with pytest.raises(ConfigError) as err:
        check_attempts("m.bf16", capped, max_num_timeout=2)
    assert "4 attempts" in err.value.message and "hydra.launcher.max_num_timeout=3" in err.value.message
    uncapped = dataclasses.replace(capped, max_limit_min=None)
    assert (uncapped.time_limit_min, uncapped.attempts) == (9030, 1)
    check_attempts("m.bf16", uncapped, max_num_timeout=0)
    with pytest.raises(ConfigError, match="does not hold the server's start-up"):
        check_attempts("m.bf16", dataclasses.replace(capped, max_limit_min=30, configured_limit_min=30), 3)


def test_the_study_plan_refuses_a_capped_job_its_requeues_cannot_finish(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Through the real dry run: 70B bf16 capped at 2 days needs more attempts than 0 requeues allow; with the
    default 3 it is planned (the JSON plan says how many attempts)."""
    from study_plan import DUMMY_KEY, JUDGE_KEY_ENV, OVERRIDES, ROOT

    from evalkit.cli import main

    monkeypatch.setenv(JUDGE_KEY_ENV, DUMMY_KEY)
    monkeypatch.chdir(ROOT)
    grid = [o for o in OVERRIDES if not o.startswith(("model=", "format=", "benchmark="))] + ["benchmark=ruler"]
    where = [f"paths.results={tmp_path}/results", f"paths.jobs={tmp_path}/jobs"]
    argv = ["sweep", "--dry-run", *grid, *where, "model=llama-3.1-70b-instruct", "format=bf16"]
    argv += ["model.resources.max_timeout_min=2880"]
    with pytest.raises(SystemExit) as stopped:  # refused before anything is submitted: the configuration's exit code
        main([*argv, "hydra.launcher.max_num_timeout=0"])
    assert stopped.value.code == 2
    refused = capsys.readouterr()
    assert "attempts of the cluster's 2880 min" in refused.out + refused.err
    assert "set hydra.launcher.max_num_timeout=" in refused.out + refused.err
    with contextlib.suppress(SystemExit):  # exit 2 where the study's data is not prefetched: the plan prints anyway
        main([*argv[:2], "--json", *argv[2:]])
    planned = capsys.readouterr().out
    doc = json.loads(planned[planned.index("{") :])
    (est,) = [j["estimate"] for j in jobs_of(doc)]
    assert est["time_limit_min"] == 2880 and 1 < est["attempts"] <= 4 and est["max_limit_min"] == 2880


def test_text_shows_each_job_against_its_limit_and_the_sweeps_totals() -> None:
    text = render_text(["a.bf16", "cpu.bf16"], [_estimate(startup_min=200.0), "CPU job: not estimated"])
    assert "240 -> 300" in text and "CPU job: not estimated" in text
    assert "sweep: 3.33 GPU-hours, $11 at the list prices of 2024-10-28" in text


def test_a_refused_long_limit_says_how_to_split(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.launch.slurm import submission as sweep

    def refuse(script: str, *, name: str = "job") -> None:
        raise SubmissionError("Slurm refuses it:\nsbatch: error: Requested time limit is invalid", hint="fix it")

    monkeypatch.setattr(sweep, "check_submittable", refuse)  # Slurm's refusal, as sbatch --test-only words it
    note = "m.bf16: 240 -> 6090 min (ruler ~64.9 GPU-h on 1x H100)"
    req = Request("eval", ["m.bf16"], "1 CPU", "#!/bin/bash\n", limit_notes=(note,))
    with pytest.raises(SubmissionError) as err:
        sweep.check([req])
    assert note in err.value.message and "sweep of its own" in err.value.message
    assert "model.resources.max_timeout_min" in err.value.message  # or cap it and let the job requeue itself
    with pytest.raises(SubmissionError) as plain:
        sweep.check([dataclasses.replace(req, limit_notes=())])
    assert "sweep of its own" not in plain.value.message
