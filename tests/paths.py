"""Where the tests' shared files are, from the repository root (tests move with the package they test)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "unit" / "golden"
"""Golden files of pure renderings (tests/golden.py checks them)."""
FIXTURES = REPO / "tests" / "fixtures"
"""Recorded harness outputs (lm-eval results and samples of real demo runs)."""
