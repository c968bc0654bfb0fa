"""Ordinary users for the tests that must run as one (cluster jobs are not root; CI runs as root).

`ordinary_user` creates a system account when missing (idempotent; no home, no login shell), optionally in a group
shared with others; `as_user` runs a command as it with `runuser` (no password, no terminal) and only the
environment given, so nothing of root's reaches the process. The venv is built from /usr/bin/python3, so other users
can run its interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import evalkit

WORKTREE = Path(evalkit.__file__).resolve().parents[1]
"""The checkout under test: children import its evalkit (PYTHONPATH), whatever the venv's editable install says."""


def ordinary_user(name: str, group: str | None = None) -> str:
    """The account `name` (created when missing), a member of `group` (created when missing) when given."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create and become the ordinary user")
    if group is not None and subprocess.run(["getent", "group", group], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "--system", group], check=True, capture_output=True)
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
        subprocess.run(cmd, check=True, capture_output=True)
    if group is not None:
        subprocess.run(["usermod", "-a", "-G", group, name], check=True, capture_output=True)
    return name


def as_user(
    user: str, *argv: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as `user` with only `env` (plus PATH, HOME=/tmp and this checkout on PYTHONPATH)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(WORKTREE), "LANG": "C.UTF-8"}
    env_args = [f"{k}={v}" for k, v in (base | dict(env or {})).items()]
    cmd = ["runuser", "-u", user, "--", "env", "-i", *env_args, *argv]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def evalkit_as(user: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real `evalkit` CLI as `user`, with the test's interpreter (the venv's)."""
    return as_user(user, sys.executable, "-m", "evalkit.cli", *args, cwd=cwd, timeout=timeout)
