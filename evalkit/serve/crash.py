"""Why a vLLM server died, read from its log: the first exception (type, message, the frame in vLLM that raised it).

A dying vLLM server writes its cause, then dozens of lines of shutdown noise ("force killing remaining processes",
"nanobind: leaked 4 instances", an EngineDeadError that says "see stack trace above"): the log's last lines rarely
say why. vLLM's processes prefix every line ("(EngineCore pid=7) ERROR 12-06 09:42:05 [core.py:906] "), so the
prefixes are removed before the tracebacks are read. Pure: text in, record out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = re.compile(r"^\((?:[\w:]+ )?pid=\d+\) (?:[A-Z]+ \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[[^\]]*\] ?)?")
"""What vLLM puts before each line: the process, then for logger lines the level, time and source."""
FRAME = re.compile(r'^\s+File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\w*)(?::\s?(?P<msg>.*))?$")
NOISE = ("EngineDeadError", "CancelledError", "KeyboardInterrupt", "SystemExit", "EngineGenerateError")
"""Exceptions that follow the cause (the engine died, the server shuts down): never the cause themselves."""


@dataclass(frozen=True)
class ServerCrash:
    """The first exception in a server's log."""

    type: str
    """Exception class as printed, e.g. "AttributeError"."""
    message: str
    frame: str
    """Where in vLLM it was raised: "vllm/_custom_ops.py:4453 in cpu_gemm_wna16" (the innermost vLLM frame; the
    innermost frame of all when none is in vLLM)."""

    def __str__(self) -> str:
        where = f" (raised in {self.frame})" if self.frame else ""
        return f"{self.type}: {self.message}{where}"


def _frame_label(path: str, line: str, func: str) -> str:
    short = path[path.rfind("/vllm/") + 1 :] if "/vllm/" in path else path.rsplit("/", 1)[-1]
    return f"{short}:{line} in {func}"


def first_exception(log: str) -> ServerCrash | None:
    """The first exception a traceback in `log` ends with, skipping the ones that only follow a death; None if the
    log has no traceback (a kill, an out-of-memory, a C++ abort)."""
    lines = [PREFIX.sub("", line) for line in log.splitlines()]
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Traceback (most recent call last):"):
            i += 1
            continue
        frames: list[tuple[str, str, str]] = []
        i += 1
        while i < len(lines):
            line = lines[i]
            frame = FRAME.match(line)
            if frame:
                frames.append((frame["path"], frame["line"], frame["func"]))
            elif line and not line[0].isspace():
                found = EXCEPTION.match(line)
                if found:
                    kind = found["type"].rsplit(".", 1)[-1]
                    if kind not in NOISE:
                        vllm = [f for f in frames if "/vllm/" in f[0]] or frames
                        return ServerCrash(kind, (found["msg"] or "").strip(), _frame_label(*vllm[-1]) if vllm else "")
                    break
                if line.startswith("Traceback"):
                    break
            i += 1
    return None
