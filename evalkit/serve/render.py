"""The vLLM server's configuration and its pure rendering: command line, environment, rerun-by-hand line.

Nothing here starts a process or reads the machine, so the rendered command is golden-file tested
(tests/unit/golden/) and the same text goes into error messages for the user to rerun by hand.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from evalkit.core.config import ServerConfig
from evalkit.core.errors import ConfigError
from evalkit.serve.cpu_support import CPU_NATIVE

Device = Literal["cpu", "gpu"]
DEVICES = ("auto", "cpu", "gpu")

ArgValue = str | int | float | bool | None | Sequence[str]
FormatArgs = Sequence[str] | Mapping[str, ArgValue]
"""vLLM args a quantization format adds: a list (`["--kv-cache-dtype", "fp8"]`) or a mapping
(`{"kv-cache-dtype": "fp8", "enforce-eager": True}`); either way they override the same options of the config."""


def validate_server_config(cfg: ServerConfig) -> None:
    """Checks the schema cannot express. Raises ConfigError naming the bad value and the valid ones."""
    if cfg.device not in DEVICES:
        raise ConfigError(f"server.device={cfg.device!r} is not one of {', '.join(DEVICES)}")
    if cfg.dtype == CPU_NATIVE and cfg.device == "gpu":
        raise ConfigError(
            f"server.dtype={CPU_NATIVE} chooses a CPU's dtype, but server.device=gpu",
            hint="use server.dtype=auto on GPUs (the checkpoint's own dtype), or server=cpu",
        )
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"server.port={cfg.port} is not a port", hint="use 0 to pick a free port")
    if cfg.tensor_parallel_size < 1:
        raise ConfigError(f"server.tensor_parallel_size={cfg.tensor_parallel_size} must be >= 1")
    if cfg.pipeline_parallel_size < 1:
        raise ConfigError(f"server.pipeline_parallel_size={cfg.pipeline_parallel_size} must be >= 1")
    for name in ("startup_timeout_s", "health_poll_s", "progress_every_s", "shutdown_timeout_s"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"server.{name}={getattr(cfg, name)} must be > 0")


def format_args_list(args: FormatArgs) -> list[str]:
    """A format's vLLM args as a list. Mapping keys may omit the dashes and use underscores; True renders a bare
    flag, False its `--no-` form (vLLM's booleans accept both), None leaves the option out."""
    if isinstance(args, str):  # a str is a Sequence too; "--a b" would be split into characters
        raise ConfigError(f"vLLM args must be a list or a mapping, not the string {args!r}", hint="write a YAML list")
    if not isinstance(args, Mapping):
        return [str(a) for a in args]
    out: list[str] = []
    for key, value in args.items():
        opt = "--" + str(key).lstrip("-").replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            out.append(opt if value else "--no-" + opt[2:])
        elif isinstance(value, (list, tuple)):
            out += [opt, *(str(v) for v in value)]
        else:
            out += [opt, str(value)]
    return out


def _is_option(token: str) -> bool:
    return token.startswith("--") and len(token) > 2


def _option_key(token: str) -> str:
    """`--x=1`, `--x` and `--no-x` set the same option."""
    name = token[2:].split("=", 1)[0]
    return name.removeprefix("no-")


def _groups(argv: Sequence[str]) -> list[list[str]]:
    """Split args into [option, *values] groups; leading non-options form their own group."""
    groups: list[list[str]] = []
    for token in argv:
        if _is_option(token) or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def merge_args(*arg_lists: Sequence[str]) -> list[str]:
    """Concatenate option lists; an option set again later replaces the earlier occurrence (argparse would take
    the last one anyway, but the rendered command should say once what the server runs with)."""
    merged: dict[str, list[str]] = {}
    for argv in arg_lists:
        for group in _groups(argv):
            key = _option_key(group[0]) if _is_option(group[0]) else f"\0{len(merged)}"
            merged.pop(key, None)  # re-insert at the end: the later source decides the position too
            merged[key] = group
    return [token for group in merged.values() for token in group]


def served_name(cfg: ServerConfig, checkpoint: str | Path) -> str:
    """The name clients must put in requests."""
    return cfg.served_model_name or str(checkpoint)


def render_command(cfg: ServerConfig, checkpoint: str | Path, port: int, format_args: FormatArgs = ()) -> list[str]:
    """The server's argv. Later sources win: config fields, then `cfg.extra_args`, then the format's args."""
    base = [
        "--model", str(checkpoint),
        "--host", cfg.host,
        "--port", str(port),
        "--dtype", cfg.dtype,
        "--tensor-parallel-size", str(cfg.tensor_parallel_size),
    ]  # fmt: skip
    if cfg.pipeline_parallel_size > 1:
        base += ["--pipeline-parallel-size", str(cfg.pipeline_parallel_size)]
    if cfg.distributed_executor_backend:
        base += ["--distributed-executor-backend", cfg.distributed_executor_backend]
    if cfg.served_model_name:
        base += ["--served-model-name", cfg.served_model_name]
    if cfg.max_model_len is not None:
        base += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.enforce_eager:
        base.append("--enforce-eager")
    if cfg.gpu_memory_utilization is not None:
        base += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    if cfg.max_num_seqs is not None:
        base += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.enable_chunked_prefill is not None:
        base.append("--enable-chunked-prefill" if cfg.enable_chunked_prefill else "--no-enable-chunked-prefill")
    if not cfg.access_log:
        base.append("--disable-uvicorn-access-log")
    args = merge_args(base, [str(a) for a in cfg.extra_args], format_args_list(format_args))
    return [cfg.python or sys.executable, "-m", cfg.module, *args]


IPC_PATH_MAX = 107
"""sizeof(sockaddr_un.sun_path) - 1 on Linux: vLLM's ZMQ sockets live at <TMPDIR>/<uuid4> and must fit."""


def server_tmpdir(work_dir: Path) -> str:
    """`<work_dir>/tmp` when vLLM's IPC socket paths fit under it, else a short per-job dir under /tmp (deep job
    folders on clusters exceed the socket path limit, and vLLM then dies at start-up with a ZMQError)."""
    candidate = str(work_dir / "tmp")
    if len(candidate) + len("/") + 36 <= IPC_PATH_MAX:
        return candidate
    return f"/tmp/evalkit-{hashlib.sha256(candidate.encode()).hexdigest()[:12]}"


def render_env(cfg: ServerConfig, *, device: Device, work_dir: Path, base_env: Mapping[str, str]) -> dict[str, str]:
    """The variables evalkit sets for the server on top of `base_env` (the environment it inherits).

    Caches and temporary files default to the job's directory: vLLM writes compile caches to ~/.cache and
    temporary files to /tmp otherwise, which on clusters are small, shared, or wiped between jobs.
    """
    env = {k: str(v) for k, v in cfg.env.items()}

    def default(name: str, value: str) -> None:
        if name not in env and name not in base_env:
            env[name] = value

    default("VLLM_CACHE_ROOT", str(work_dir / "vllm-cache"))
    default("TMPDIR", server_tmpdir(work_dir))
    default("VLLM_NO_USAGE_STATS", "1")  # a batch job makes no calls home
    default("PYTHONUNBUFFERED", "1")  # log lines reach the file when written, so the tail in errors is current
    if device == "cpu":
        space = env.get("VLLM_CPU_KVCACHE_SPACE", base_env.get("VLLM_CPU_KVCACHE_SPACE"))
        if space is None or not space.strip().isdigit():
            raise ConfigError(
                f"VLLM_CPU_KVCACHE_SPACE is {'unset' if space is None else repr(space)}: vLLM on CPU needs the KV "
                "cache size in GiB of RAM",
                hint="set server.env.VLLM_CPU_KVCACHE_SPACE, e.g. 2 for the demo model (RAM is shared by all jobs)",
            )
    return env


def shell_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A copy-pasteable shell line (one option per line) that reruns `argv` with `env` set."""
    lines = [f"{k}={shlex.quote(v)}" for k, v in sorted((env or {}).items())]
    groups = _groups(argv)  # `python -m module` has no `--` option, so it is the first group
    lines.append(shlex.join(groups[0]))
    lines += ["  " + shlex.join(group) for group in groups[1:]]
    return " \\\n".join(lines)
