"""Whether the Hugging Face cache holds a Hub repo (what offline jobs read): asked by `evalkit doctor` of checkpoints
and by benchmark families of their datasets."""

from __future__ import annotations

from pathlib import Path


def hub_cached(hf_home: Path, repo: str, kind: str = "model") -> bool:
    """Whether a Hub repo has a snapshot in the Hugging Face cache at `hf_home` (what offline jobs read)."""
    entry = hf_home / "hub" / f"{kind}s--{repo.replace('/', '--')}"
    if kind == "model":
        return any(entry.glob("snapshots/*/config.json"))
    # datasets: the Hub snapshot or the `datasets` library's own cache (what `prefetch` fills)
    return any(entry.glob("snapshots/*")) or (hf_home / "datasets" / repo.replace("/", "___")).is_dir()
