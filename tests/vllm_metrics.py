"""vLLM's own Prometheus metrics, read from a live server's /metrics (integration tests)."""

from __future__ import annotations

import urllib.request


def metric_sum(base_url: str, *names: str) -> float:
    """The sum of every sample of these metrics (over their labels): e.g. `vllm:request_success_total` summed over
    finish reasons. `base_url`: the OpenAI endpoint's, ".../v1"."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=30) as resp:
        lines = resp.read().decode().splitlines()
    prefixes = tuple(f"{name}{{" for name in names)
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefixes))
