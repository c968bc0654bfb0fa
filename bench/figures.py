"""What every `make bench` figure file carries (when, the command that made it, the machine) and how it is written:
`bench/<name>.json` for machines, `bench/<name>.md` for people, the latter also printed."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.serve.cpu_support import read_cpuinfo

OUT = Path(__file__).resolve().parent


def run_info(module: str, argv: list[str] | None) -> dict[str, str]:
    """`when`, `command` and `machine` of this bench run (`module`: e.g. "bench.throughput")."""
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "make bench  # " + shlex.join(["python", "-m", module, *(argv or sys.argv[1:])]),
        # the CPU model (lscpu's "Model name"), which timings must name; the host name says nothing of it
        "machine": f"{read_cpuinfo().model} ({platform.machine()}, {os.cpu_count()} cores, host {platform.node()})",
    }


def header(title: str, info: dict[str, Any]) -> list[str]:
    return [f"# {title}", "", f"`{info['command']}` on {info['machine']}, {info['when']}", ""]


def write(name: str, result: dict[str, Any], md: list[str]) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
