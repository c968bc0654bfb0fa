"""The vLLM command and environment are pure: golden files pin them, the rules around them are unit-tested."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from golden import check_golden as _check
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError
from paths import GOLDEN, REPO

from evalkit.core.errors import ConfigError
from evalkit.serve import (
    ServerConfig,
    format_args_list,
    merge_args,
    render_command,
    render_env,
    shell_command,
    validate_server_config,
)


def check_golden(name: str, text: str) -> None:
    _check(GOLDEN / name, text)


def cpu_demo() -> ServerConfig:
    return ServerConfig(
        python="/opt/evalkit/.venv/bin/python",
        max_model_len=2048,
        enforce_eager=True,
        served_model_name="smollm2-135m-instruct__bf16",
        env={"VLLM_CPU_KVCACHE_SPACE": "2"},
    )


def gpu_tp8() -> ServerConfig:
    return ServerConfig(
        python="/opt/evalkit/.venv/bin/python",
        tensor_parallel_size=8,
        max_model_len=8192,
        gpu_memory_utilization=0.9,
        max_num_seqs=256,
        enable_chunked_prefill=True,
        served_model_name="llama-3.1-405b-instruct__fp8",
        extra_args=["--max-num-batched-tokens", "16384"],
    )


def test_cpu_demo_golden() -> None:
    cfg = cpu_demo()
    argv = render_command(cfg, "/work/main/.cache/demo/bf16", 8123)
    env = render_env(cfg, device="cpu", work_dir=Path("/jobs/demo/smollm2__bf16"), base_env={"PATH": "/usr/bin"})
    check_golden("serve_cpu_demo.sh", shell_command(argv, env) + "\n")


def test_gpu_tp8_golden() -> None:
    cfg = gpu_tp8()
    argv = render_command(cfg, "/ckpt/llama-3.1-405b-instruct/fp8", 8123, format_args={"kv-cache-dtype": "fp8"})
    # the cluster's node-local TMPDIR is kept; only the cache root is defaulted into the job dir
    env = render_env(cfg, device="gpu", work_dir=Path("/jobs/study/llama405b__fp8"), base_env={"TMPDIR": "/scratch"})
    check_golden("serve_gpu_tp8.sh", shell_command(argv, env) + "\n")


def test_format_args_override_config_and_extra_args() -> None:
    cfg = ServerConfig(max_model_len=4096, enable_chunked_prefill=True, extra_args=["--max-num-seqs", "8"])
    argv = render_command(
        cfg, "/ckpt", 1, format_args=["--max-model-len=2048", "--no-enable-chunked-prefill", "--max-num-seqs", "4"]
    )
    assert "4096" not in argv and "--enable-chunked-prefill" not in argv and "8" not in argv
    assert argv[-4:] == ["--max-model-len=2048", "--no-enable-chunked-prefill", "--max-num-seqs", "4"]


def test_merge_args_keeps_values_and_negative_numbers() -> None:
    assert merge_args(["--a", "1", "--flag", "--b", "-1"], ["--a", "2"]) == ["--flag", "--b", "-1", "--a", "2"]


def test_format_args_mapping() -> None:
    args = {"kv_cache_dtype": "fp8", "--enforce-eager": True, "enable-prefix-caching": False, "seed": None,
            "served-model-name": ["a", "b"]}  # fmt: skip
    assert format_args_list(args) == [
        "--kv-cache-dtype", "fp8", "--enforce-eager", "--no-enable-prefix-caching", "--served-model-name", "a", "b",
    ]  # fmt: skip


def test_format_args_string_is_rejected() -> None:
    with pytest.raises(ConfigError, match="list or a mapping"):
        format_args_list("--enforce-eager")


def test_cpu_needs_kv_cache_space() -> None:
    with pytest.raises(ConfigError, match="VLLM_CPU_KVCACHE_SPACE") as err:
        render_env(ServerConfig(), device="cpu", work_dir=Path("/j"), base_env={})
    assert "server.env.VLLM_CPU_KVCACHE_SPACE" in str(err.value)
    # set by the inherited environment is enough; gpu never needs it
    assert "VLLM_CPU_KVCACHE_SPACE" not in render_env(
        ServerConfig(), device="cpu", work_dir=Path("/j"), base_env={"VLLM_CPU_KVCACHE_SPACE": "4"}
    )
    render_env(ServerConfig(), device="gpu", work_dir=Path("/j"), base_env={})


def test_env_defaults_do_not_override_what_is_set() -> None:
    cfg = ServerConfig(env={"VLLM_CACHE_ROOT": "/shared/vllm", "VLLM_CPU_KVCACHE_SPACE": "2"})
    env = render_env(cfg, device="cpu", work_dir=Path("/j"), base_env={"TMPDIR": "/scratch"})
    assert env["VLLM_CACHE_ROOT"] == "/shared/vllm" and "TMPDIR" not in env


def test_python_defaults_to_current_interpreter() -> None:
    import sys

    assert render_command(ServerConfig(), "/ckpt", 1)[:3] == [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("device", "tpu", "auto, cpu, gpu"),
        ("port", 70000, "use 0"),
        ("tensor_parallel_size", 0, ">= 1"),
        ("pipeline_parallel_size", 0, "pipeline_parallel_size=0 must be >= 1"),
    ],
)
def test_validate_names_the_bad_value(field: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        validate_server_config(ServerConfig(**{field: value}))


def test_structured_config_catches_typos() -> None:
    cfg = OmegaConf.structured(ServerConfig)
    with pytest.raises(ConfigAttributeError):
        cfg.enforce_eagre = True
    cfg.env.VLLM_CPU_KVCACHE_SPACE = 2  # YAML ints become the declared str
    assert OmegaConf.to_object(cfg).env == {"VLLM_CPU_KVCACHE_SPACE": "2"}  # type: ignore[union-attr]


def test_tmpdir_short_enough_for_vllm_ipc_sockets(tmp_path: Path) -> None:
    from evalkit.serve.render import IPC_PATH_MAX, server_tmpdir

    shallow = Path("/w/jobs/demo/m.bf16")
    assert server_tmpdir(shallow) == "/w/jobs/demo/m.bf16/tmp"
    deep = Path("/tmp/pytest-of-root/pytest-39/pipeline0/jobs/it/smollm2-135m-instruct.bf16")
    short = server_tmpdir(deep)
    assert len(short) + 1 + 36 <= IPC_PATH_MAX and short.startswith("/tmp/evalkit-")
    assert server_tmpdir(deep) == short  # stable: the rerun line a user copies names the same dir


def test_gpu_405b_bf16_two_nodes_golden() -> None:
    """The BF16 405B server as its job starts it: conf/server/gpu.yaml, the model's TP 8 x PP 2 over two nodes, run
    by the Ray bootstrap (evalkit.serve.process.VLLMServer.start wraps it the same way)."""
    from evalkit.core.config import ModelConfig
    from evalkit.core.resources import job_resources
    from evalkit.serve.ray_cluster import RayCluster, bootstrap_env, wrap_command

    conf = REPO / "conf"
    model = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(conf / "model/llama-3.1-405b-instruct.yaml"))
    )
    assert isinstance(model, ModelConfig)
    res = job_resources(model, "bf16")
    server = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(ServerConfig), OmegaConf.load(conf / "server/gpu.yaml"))
    )
    assert isinstance(server, ServerConfig)
    cfg = dataclasses.replace(
        server,
        python="/opt/evalkit/.venv/bin/python",
        tensor_parallel_size=res.tensor_parallel_size,
        pipeline_parallel_size=res.pipeline_parallel_size,
        distributed_executor_backend="ray",
        max_model_len=model.max_model_len,
        served_model_name="llama-3.1-405b-instruct__bf16",
    )
    job_dir = Path("/jobs/study/llama-3.1-405b-instruct.bf16")
    argv = wrap_command(
        render_command(cfg, "/ckpt/llama-3.1-405b-instruct/bf16", 8123), "/opt/evalkit/evalkit/serve/ray_cluster.sh"
    )
    env = render_env(cfg, device="gpu", work_dir=job_dir, base_env={"TMPDIR": "/scratch"})
    env |= bootstrap_env(RayCluster(res.nodes, res.gpus, job_dir / "ray-workers.log"), str(cfg.python))
    text = shell_command(argv, env)
    check_golden("serve_gpu_405b_bf16_2nodes.sh", text + "\n")
    assert "--tensor-parallel-size 8" in text and "--pipeline-parallel-size 2" in text
    assert (
        "--distributed-executor-backend ray" in text and "EVALKIT_RAY_NODES=2" in text and "EVALKIT_RAY_GPUS=16" in text
    )


def test_single_stage_command_is_unchanged() -> None:
    """pp 1 and no backend render nothing new: single-node servers start exactly as before."""
    argv = render_command(gpu_tp8(), "/ckpt", 1)
    assert "--pipeline-parallel-size" not in argv and "--distributed-executor-backend" not in argv
    argv = render_command(dataclasses.replace(gpu_tp8(), pipeline_parallel_size=2), "/ckpt", 1)
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
