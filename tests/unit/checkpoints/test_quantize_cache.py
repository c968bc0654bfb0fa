"""ensure_quantized with a fake quantization interpreter (a real child process, no llmcompressor): cache hits,
cache keys, manifests, errors that teach, and all-or-nothing entries when the worker or the caller is killed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from paths import REPO

from evalkit.checkpoints.manifest import QuantizeManifest, read_manifest
from evalkit.checkpoints.quantize import ensure_quantized, find_quantized, locate, recipe_identity
from evalkit.checkpoints.recipes import RecipeConfig, recipe_hash
from evalkit.core.errors import CheckpointError

FAKE_PYTHON = """\
#!{python}
# Stands in for .venv-quant's python: called as  <this> -I -u quantize_worker.py --spec <spec.json>
import json, os, sys, time
from pathlib import Path

spec = json.loads(Path(sys.argv[sys.argv.index("--spec") + 1]).read_text())
out, mode, state = Path(spec["output"]), os.environ["FAKE_MODE"], Path(os.environ["FAKE_STATE"])
state.mkdir(parents=True, exist_ok=True)
(state / "pid").write_text(str(os.getpid()))
with (state / "calls.jsonl").open("a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "omp": os.environ.get("OMP_NUM_THREADS"),
                        "offline": os.environ.get("HF_HUB_OFFLINE"), "spec": spec}}) + "\\n")
print("fake worker starting", flush=True)
(out / "model.safetensors").write_bytes(b"partial")
if mode == "hang":
    time.sleep(300)
if mode == "crash":
    print("RuntimeError: out of ideas", flush=True)
    sys.exit(2)
if mode == "fail":
    print("Traceback (most recent call last):", flush=True)
    print("ValueError: group_size 128 is not divisible into 576 columns", flush=True)
    sys.exit(1)
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
config = {{"model_type": "llama"}}
if mode != "bad_output":
    config["quantization_config"] = {{"quant_method": "compressed-tensors", "format": "float-quantized"}}
(out / "config.json").write_text(json.dumps(config))
(out / "model.safetensors").write_bytes(b"quantized weights")
Path(spec["result"]).write_text(json.dumps({{"tool_versions": {{"llmcompressor": "fake"}}, "calibration_tokens": 123}}))
print("fake worker done", flush=True)
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "fake-python"
    path.write_text(FAKE_PYTHON.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "bf16"
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "llama", "hidden_size": 576}')
    (path / "model.safetensors").write_bytes(b"bf16 weights")
    return path


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Path]:
    """fake(mode, sleep=0) sets how the fake worker behaves; returns its state dir (pid, calls.jsonl)."""
    state = tmp_path / "fake-state"

    def configure(mode: str, sleep: float = 0) -> Path:
        monkeypatch.setenv("FAKE_MODE", mode)
        monkeypatch.setenv("FAKE_STATE", str(state))
        monkeypatch.setenv("FAKE_SLEEP", str(sleep))
        return state

    return configure


FP8 = RecipeConfig(scheme="FP8_DYNAMIC")
W4A16 = RecipeConfig(scheme="W4A16", algorithm="gptq", group_size=64, weight_observer="memoryless_mse")


def calls(state: Path) -> list[dict[str, Any]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def entries(cache: Path) -> list[str]:
    """Everything in the cache root except the bookkeeping dirs (locks, identity memo)."""
    return sorted(p.name for p in cache.iterdir() if p.name not in (".locks", ".identity")) if cache.exists() else []


def test_miss_produces_once_then_hits(tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]) -> None:
    state = fake("ok")
    cache, log = tmp_path / "cache", tmp_path / "logs" / "quantize.log"
    out = ensure_quantized(base, W4A16, cache, str(fake_python), log, threads=3)
    assert entries(cache) == [out.name] and out.name.startswith("bf16--w4a16--")
    assert (out / "model.safetensors").read_bytes() == b"quantized weights"
    assert not (out / ".worker-result.json").exists()

    started = time.monotonic()
    assert ensure_quantized(base, W4A16, cache, str(fake_python), log, threads=3) == out
    assert time.monotonic() - started < 2
    assert len(calls(state)) == 1, "a cache hit must not start the worker"
    assert find_quantized(base, W4A16, cache) == out

    manifest = read_manifest(out)
    assert isinstance(manifest, QuantizeManifest)
    assert manifest.recipe_hash == recipe_hash(W4A16)
    assert manifest.recipe["group_size"] == 64 and "GPTQModifier" in manifest.recipe_yaml
    calib_file = REPO / "data" / "calibration" / "chat_calibration.jsonl"
    assert manifest.calibration is not None
    assert manifest.calibration.sha256 == hashlib.sha256(calib_file.read_bytes()).hexdigest()
    assert (manifest.calibration.samples_used, manifest.calibration.samples_available) == (64, 215)
    assert manifest.calibration.tokens == 123
    assert manifest.tool_versions == {"llmcompressor": "fake"}
    assert manifest.threads == 3 and manifest.wall_time_s > 0 and manifest.base == str(base.resolve())


def test_worker_gets_threads_isolation_offline_and_the_rendered_recipe(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    state = fake("ok")
    log = tmp_path / "q.log"
    ensure_quantized(base, W4A16, tmp_path / "cache", str(fake_python), log, threads=1)
    (call,) = calls(state)
    assert call["omp"] == "1" and call["offline"] == "1"
    assert call["argv"][:2] == ["-I", "-u"], "the worker must not import evalkit's modules (gguf.py shadowing)"
    assert call["argv"][2].endswith("quantize_worker.py")
    assert [m["type"] for m in call["spec"]["modifiers"]] == ["GPTQModifier"]
    assert len(call["spec"]["calibration"]["samples"]) == 64
    assert call["spec"]["calibration"]["max_seq_length"] == 2048
    header = log.read_text().splitlines()[:2]
    assert header[1].startswith("# ") and "OMP_NUM_THREADS=1" in header[1] and "--spec" in header[1]


def test_data_free_recipe_sends_no_calibration(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    state = fake("ok")
    out = ensure_quantized(base, FP8, tmp_path / "cache", str(fake_python), tmp_path / "q.log")
    assert calls(state)[0]["spec"]["calibration"] is None
    manifest = read_manifest(out)
    assert isinstance(manifest, QuantizeManifest) and manifest.calibration is None


def test_cache_key_follows_base_content_recipe_and_calibration(tmp_path: Path, base: Path) -> None:
    cache = tmp_path / "cache"
    w4_64 = locate(base, W4A16, cache)
    w4_128 = locate(base, RecipeConfig(scheme="W4A16", algorithm="gptq", group_size=128), cache)
    assert w4_64.path != w4_128.path
    calib = tmp_path / "other.jsonl"
    calib.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    other_calib = RecipeConfig(**{**W4A16.__dict__, "calibration_file": str(calib)})
    assert locate(base, other_calib, cache).key != w4_64.key
    assert locate(base, other_calib, cache).recipe_hash == w4_64.recipe_hash  # same recipe, other data
    (base / "model.safetensors").write_bytes(b"another fine-tune")
    assert locate(base, W4A16, cache).path != w4_64.path


def test_recipe_identity_follows_calibration_content_not_path(tmp_path: Path) -> None:
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes((REPO / "data" / "calibration" / "chat_calibration.jsonl").read_bytes())
    moved = RecipeConfig(**{**W4A16.__dict__, "calibration_file": str(copy)})
    assert recipe_identity(moved) == recipe_identity(W4A16)
    copy.write_text('{"messages": [{"role": "user", "content": "other data"}]}\n')
    assert recipe_identity(moved) != recipe_identity(W4A16)
    # data-free: the calibration file does not matter (and need not exist)
    fp8_elsewhere = RecipeConfig(scheme="FP8_DYNAMIC", calibration_file=str(tmp_path / "missing.jsonl"))
    assert recipe_identity(fp8_elsewhere) == recipe_identity(FP8)


def test_failure_raises_with_log_tail_and_hint_and_caches_nothing(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    fake("fail")
    cache, log = tmp_path / "cache", tmp_path / "q.log"
    with pytest.raises(CheckpointError) as err:
        ensure_quantized(base, W4A16, cache, str(fake_python), log)
    message = str(err.value)
    assert "exit code 1" in message and "ValueError: group_size 128 is not divisible" in message
    assert f"log: {log}" in message
    assert "model.recipe_overrides.<format>.group_size" in message
    assert entries(cache) == []


def test_worker_output_without_quantization_config_is_rejected(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    fake("bad_output")
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="quant_method None, expected 'compressed-tensors'"):
        ensure_quantized(base, FP8, cache, str(fake_python), tmp_path / "q.log")
    assert entries(cache) == []


def wait_for(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def test_worker_killed_mid_run_leaves_no_entry(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    state = fake("hang")
    cache = tmp_path / "cache"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ensure_quantized(base, W4A16, cache, str(fake_python), tmp_path / "q.log")
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    pid = int(wait_for(state / "pid"))
    assert any(p.name.startswith(".tmp-") for p in cache.iterdir()), "the worker writes into a temporary dir"
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CheckpointError)
    assert "killed by SIGKILL" in str(errors[0]) and "nothing was cached" in str(errors[0])
    assert entries(cache) == []
    assert find_quantized(base, W4A16, cache) is None


CALLER = """\
import sys
from pathlib import Path
from evalkit.checkpoints.quantize import ensure_quantized
from evalkit.checkpoints.recipes import RecipeConfig
recipe = RecipeConfig(scheme="W4A16", algorithm="gptq", group_size=64, weight_observer="memoryless_mse")
ensure_quantized(Path(sys.argv[1]), recipe, Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
"""


def test_caller_killed_mid_run_leaves_no_entry_and_the_next_run_recovers(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    state = fake("hang")
    cache = tmp_path / "cache"
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, str(base), str(cache), str(fake_python), str(tmp_path / "q.log")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        worker_pid = int(wait_for(state / "pid"))
        caller.send_signal(signal.SIGKILL)
        caller.wait(timeout=30)
    finally:
        caller.kill()
        # the real worker exits by itself when its parent dies (watchdog); the fake one has to be stopped
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.killpg(worker_pid, signal.SIGKILL)
    leftovers = entries(cache)
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers), leftovers
    assert find_quantized(base, W4A16, cache) is None

    fake("ok")
    out = ensure_quantized(base, W4A16, cache, str(fake_python), tmp_path / "q2.log")
    assert entries(cache) == [out.name], "the dead caller's temporary directory is cleaned up"


def test_concurrent_callers_quantize_once(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    state = fake("ok", sleep=1.0)
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(
                ensure_quantized(base, FP8, cache, str(fake_python), tmp_path / f"q{i}.log")
            )
        )
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2 and results[0] == results[1]
    assert len(calls(state)) == 1


def test_missing_interpreter_and_base_say_what_to_do(tmp_path: Path, base: Path) -> None:
    with pytest.raises(CheckpointError, match="create the quantization environment"):
        ensure_quantized(base, FP8, tmp_path / "cache", str(tmp_path / "no-python"), tmp_path / "q.log")
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        ensure_quantized(tmp_path / "nowhere", FP8, tmp_path / "cache", sys.executable, tmp_path / "q.log")


def test_timeout_kills_the_worker(tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]) -> None:
    fake("hang")
    cache = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="killed by SIGKILL"):
        ensure_quantized(base, FP8, cache, str(fake_python), tmp_path / "q.log", timeout_s=2)
    assert time.monotonic() - started < 20
    assert entries(cache) == []


def test_other_failures_quote_the_command_to_rerun(
    tmp_path: Path, base: Path, fake_python: Path, fake: Callable[..., Path]
) -> None:
    fake("crash")
    with pytest.raises(CheckpointError) as err:
        ensure_quantized(base, FP8, tmp_path / "cache", str(fake_python), tmp_path / "q.log", threads=2)
    message = str(err.value)
    assert "exit code 2" in message and "RuntimeError: out of ideas" in message
    assert "rerun the worker by hand" in message and "OMP_NUM_THREADS=2" in message and "--spec" in message
