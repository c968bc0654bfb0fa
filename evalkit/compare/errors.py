"""The compare package's error: a subclass of evalkit's one hierarchy (it could move into evalkit.errors)."""

from __future__ import annotations

from evalkit.errors import EvalkitError


class CompareError(EvalkitError):
    """Baseline and variant cannot be compared (different documents, missing baseline, unusable samples)."""
