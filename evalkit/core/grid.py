"""Grid expansion: Hydra overrides -> one job per model x format (x any other swept key), benchmarks grouped.

`model=a,b format=bf16,fp8 benchmark=v1,v2` is 2 x 2 jobs, each running both benchmarks against one server:
the benchmark axis is folded into a list (`benchmark=[v1,v2]`) instead of being multiplied out, because all
benchmarks of a model x format share one served checkpoint. Pure: parsing only, no config composition.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from evalkit.core.errors import ConfigError

GROUPED_KEY = "benchmark"


def _values(override: Override) -> list[str]:
    """The values of a swept or listed override, each once (`format=bf16,bf16` is one job, not two jobs of the same
    cells racing each other), in the order given."""
    if override.is_sweep_override():
        if not override.is_discrete_sweep():
            raise ConfigError(f"{override.input_line}: only comma-separated choices can be swept")
        return list(dict.fromkeys(override.sweep_string_iterator()))
    value = override.value()
    if isinstance(value, list):
        return list(dict.fromkeys(str(v) for v in value))
    return [override.get_value_element_as_str()]


def _line(ov: Override) -> str:
    """The override as the user wrote it (always set for parsed command-line overrides)."""
    assert ov.input_line is not None
    return ov.input_line


def parse(overrides: Sequence[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:
        raise ConfigError(f"cannot parse overrides {list(overrides)}: {exc}") from exc


def grouped_override(values: Sequence[str]) -> str:
    """The single override that selects several benchmarks for one job."""
    return f"{GROUPED_KEY}=[{','.join(values)}]"


def group_benchmarks(overrides: Sequence[str]) -> list[str]:
    """Rewrite the benchmark override (a value or a comma sweep) to the list the schema expects; keep the rest."""
    out = []
    for ov in parse(overrides):
        is_bench = ov.get_key_element() == GROUPED_KEY and not ov.is_delete()
        out.append(grouped_override(_values(ov)) if is_bench else _line(ov))
    return out


def normalize(overrides: Sequence[str]) -> list[str]:
    """For a single job: `benchmark=a` or `benchmark=a,b` become the list form the schema expects."""
    out = []
    for ov in parse(overrides):
        if ov.get_key_element() == GROUPED_KEY and not ov.is_delete():
            out.append(grouped_override(_values(ov)))
        elif ov.is_sweep_override():
            raise ConfigError(
                f"{ov.input_line} sweeps over several values; `evalkit run` runs one model x format",
                hint="use `evalkit sweep` for a grid",
            )
        else:
            out.append(_line(ov))
    return out


def expand(overrides: Sequence[str]) -> list[list[str]]:
    """Job override lists of the grid, in a stable order (the order the values were given)."""
    axes: list[list[str]] = []
    grouped: list[str] | None = None
    for ov in parse(overrides):
        key = ov.get_key_element()
        if key == GROUPED_KEY and not ov.is_delete():
            grouped = _values(ov)
        elif ov.is_sweep_override():
            axes.append([f"{key}={v}" for v in _values(ov)])
        else:
            axes.append([_line(ov)])
    jobs = [list(combo) for combo in itertools.product(*axes)]
    if grouped is not None:
        jobs = [[*job, grouped_override(grouped)] for job in jobs]
    return jobs
