"""`evalkit prefetch`: on a machine with internet, cache everything a grid needs, so jobs run with the Hub offline.

Checkpoints given as Hub ids (and the bf16 base of recipe-produced formats) go to the Hugging Face cache that jobs
use (`HF_HOME`, default `<paths.cache>/huggingface`); each benchmark adapter caches its own data (datasets of
lm-eval tasks, HumanEval+ release file, Arena-Hard questions and baseline answers). The Hub datasets' row counts
and content hashes go to a manifest in that cache (`datasets_manifest.json`): an offline cluster may then point a
real benchmark at local copies of them, which are refused unless they match it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from evalkit.benchmarks import get_adapter
from evalkit.core.datasources import manifest_path
from evalkit.core.errors import CheckpointError

log = logging.getLogger("evalkit.pipeline.prefetch")


def hub_checkpoints(plans: Iterable[Any]) -> list[str]:
    """Hub ids a grid serves or quantizes from, in first-seen order."""
    ids: list[str] = []
    for plan in plans:
        cfg = plan.cfg
        specs = [cfg.model.checkpoints[cfg.format.name]]
        if specs[0].source == "recipe":
            specs.append(cfg.model.checkpoints[cfg.baseline_format])
        ids += [s.id for s in specs if s.source == "hub" and s.id not in ids]
    return ids


def prefetch(plans: list[Any]) -> None:
    from huggingface_hub import snapshot_download

    from evalkit.pipeline.job import harness_env

    if not plans:
        return
    env = harness_env(plans[0].cfg)
    os.environ["HF_HOME"] = env["HF_HOME"]
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.pop(key, None)  # prefetch is the one step that must reach the Hub
    for repo in hub_checkpoints(plans):
        log.info("checkpoint %s -> %s", repo, env["HF_HOME"])
        try:
            snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"])
        except Exception as exc:
            raise CheckpointError(
                f"could not download {repo}: {type(exc).__name__}: {exc}",
                hint="check network access and, for gated models (meta-llama/*), `huggingface-cli login`",
            ) from exc
    seen: set[str] = set()
    for plan in plans:
        for name in plan.cfg.benchmark:
            if name in seen:
                continue
            seen.add(name)
            bench = plan.cfg.benchmarks[name]
            adapter = get_adapter(bench.adapter)
            log.info("benchmark %s: caching its data", name)
            adapter.prefetch(dict(bench.settings))
    # what local copies of these datasets are checked against (evalkit.core.datasources.check_benchmark_data)
    log.info("dataset rows and content hashes recorded in %s", manifest_path(plans[0].cfg.paths.cache))
