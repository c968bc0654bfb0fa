"""The `divergence` benchmark: per-token top-k prompt logprobs of a fixed prompt set (see adapter.py)."""
