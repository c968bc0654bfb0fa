"""What the Arena-Hard family's result rows are called, for `evalkit.compare` (pure, no imports).

The one module of the family that code outside `evalkit.benchmarks` may import (`.importlinter`).
"""

from __future__ import annotations

TASK = "arena_hard"
"""The task (and suite) of its rows."""
WIN_RATE = "win_rate"
"""The primary metric: the Bradley-Terry win rate vs the baseline model (percent)."""
WIN_FRACTION = "win_fraction"
"""Per-question sample metric: the model's share of that question's weighted battles (0-1); absent when every
judgment of the question failed. `evalkit compare` pairs formats on it (the BT fit has no per-question values)."""
