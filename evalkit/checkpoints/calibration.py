"""Calibration data: read a local file into samples and pick the subset a recipe asks for.

Offline by design: the study calibrated on downloaded datasets, which this project cannot reach at run time, so
calibration text ships with the project (data/calibration/). Two formats:
- `.jsonl`: one chat conversation per line, `{"messages": [{"role": ..., "content": ...}, ...]}`; the quantization
  worker renders it with the model's chat template, so calibration activations look like the chat prompts the
  model is evaluated on.
- `.txt`: plain-text samples separated by blank lines (for models without a chat template).
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from evalkit.core.errors import CheckpointError
from evalkit.util.files import JsonLineError, parse_jsonl

PROJECT_ROOT = Path(__file__).resolve().parents[2]

Sample = str | list[dict[str, str]]
"""A plain text, or a conversation (list of {"role", "content"} messages)."""


def resolve_calibration_file(path: str | Path) -> Path:
    """The calibration file: absolute as given; relative against the working directory, then the project root."""
    candidates = [Path(path)] if Path(path).is_absolute() else [Path.cwd() / path, PROJECT_ROOT / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise CheckpointError(
        f"calibration file {path} not found (looked at: {', '.join(str(c) for c in candidates)})",
        hint="set the recipe's calibration_file to an existing .jsonl or .txt file",
    )


def _parse_message_list(obj: Any, where: str) -> list[dict[str, str]]:
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if not isinstance(messages, list) or not messages:
        raise CheckpointError(f"{where}: expected an object with a non-empty 'messages' list")
    for m in messages:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise CheckpointError(f"{where}: every message needs string 'role' and 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def load_samples(path: Path) -> list[Sample]:
    """All samples of a calibration file, in file order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        samples: list[Sample] = []
        try:
            for lineno, obj in parse_jsonl(io.StringIO(text), path):
                samples.append(_parse_message_list(obj, f"{path}:{lineno}"))
        except JsonLineError as e:
            raise CheckpointError(f"{path}:{e.lineno}: not JSON ({e.error.msg})") from e
    elif path.suffix == ".txt":
        samples = [block.strip() for block in text.split("\n\n") if block.strip()]
    else:
        raise CheckpointError(f"calibration file {path} has an unknown format", hint="use a .jsonl or .txt file")
    if not samples:
        raise CheckpointError(f"calibration file {path} has no samples")
    return samples


def select_samples(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """A seeded random subset of `n` samples (all of them, shuffled, if there are fewer)."""
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    return [samples[i] for i in order[:n]]
