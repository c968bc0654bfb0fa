"""Serve one checkpoint with vLLM's OpenAI-compatible server: configuration, rendering, process lifecycle.

`render` is pure (the command and environment, golden-file tested); `process` starts, watches and stops the
server's process group. Import from here.
"""

from evalkit.core.config import ServerConfig
from evalkit.serve.process import (
    ModelCard,
    VLLMInstall,
    VLLMServer,
    check_compiler,
    client_base_url,
    pick_free_port,
    port_in_use,
    probe_health,
    probe_vllm,
    wait_healthy,
)
from evalkit.serve.render import (
    FormatArgs,
    format_args_list,
    merge_args,
    render_command,
    render_env,
    served_name,
    shell_command,
    validate_server_config,
)

__all__ = [
    "FormatArgs",
    "ModelCard",
    "ServerConfig",
    "VLLMInstall",
    "VLLMServer",
    "check_compiler",
    "client_base_url",
    "format_args_list",
    "merge_args",
    "pick_free_port",
    "port_in_use",
    "probe_health",
    "probe_vllm",
    "render_command",
    "render_env",
    "served_name",
    "shell_command",
    "validate_server_config",
    "wait_healthy",
]
