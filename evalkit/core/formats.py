"""The baseline format when no config is loaded: one definition, light to import (the analysis commands' flags
default to it without composing a Hydra config).

A sweep's baseline is the config's `baseline_format` (`EvalkitConfig.baseline_format`, conf/config.yaml), whose
default is this same constant; `evalkit aggregate`, `compare`, `recommend` and the like read results, not a config,
so their `--baseline` flag defaults to it.
"""

from __future__ import annotations

BASELINE_FORMAT = "bf16"
"""The format every other is compared with: recovery tables divide by it, adaptive variants pair with it, baseline
replicates re-run it."""
