"""The llm-compressor recipe of a quantization format: its typed config, its identity and its rendering.

Pure functions only. llm-compressor lives in another environment (.venv-quant), so nothing here imports it:
`render_modifiers` produces plain data that `quantize_worker.py` turns into modifier objects, and
`render_recipe_yaml` the same recipe in llm-compressor's own YAML form (what lands in the checkpoint's
recipe.yaml and what a human compares with a model card).

Schemes are expanded into explicit quantization arguments rather than passed as preset names
("W4A16"), because the study's W4A16 needs a non-preset observer and some models a non-preset group size.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalkit.core.config import RecipeConfig
from evalkit.core.enums import QuantScheme
from evalkit.core.errors import ConfigError

RECIPE_FORMAT_VERSION = 1
"""Bumped when the rendering changes in a way that changes the produced checkpoint, so old cache entries are not
reused for the new meaning. Part of the recipe hash."""

ALGORITHMS = ("rtn", "gptq")
ACTORDERS = (None, "static", "weight")
WEIGHT_OBSERVERS = (None, "memoryless_minmax", "memoryless_mse")
CALIBRATION_DTYPES = (None, "float32", "bfloat16", "float16")

# compressed-tensors preset schemes (quant_scheme.py), spelt out. Group size is filled from the recipe.
_SCHEMES: dict[QuantScheme, dict[str, dict[str, Any]]] = {
    # W8A8-FP: FP8 E4M3 weights with one scale per output channel; activations FP8, scaled per token at run time.
    QuantScheme.FP8_DYNAMIC: {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True, "dynamic": True},
    },
    # W8A8-INT: INT8 weights per output channel; INT8 activations scaled per token at run time.
    QuantScheme.W8A8: {
        "weights": {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True, "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": True, "dynamic": True},
    },
    # W4A16-INT: symmetric INT4 weights with one scale per group of input columns; activations stay 16-bit.
    QuantScheme.W4A16: {
        "weights": {"num_bits": 4, "type": "int", "strategy": "group", "symmetric": True, "dynamic": False},
    },
}
SCHEMES = tuple(QuantScheme)
assert set(_SCHEMES) == set(SCHEMES), "every scheme is spelt out above"


@dataclass(frozen=True)
class ModifierSpec:
    """One llm-compressor modifier as plain data: its class name and constructor arguments."""

    type: str
    """Class name in llm-compressor, e.g. "GPTQModifier"."""
    args: dict[str, Any]
    """Keyword arguments of the constructor (JSON-serialisable)."""


def _fields() -> list[str]:
    return [f.name for f in dataclasses.fields(RecipeConfig)]


def recipe_from_mapping(data: Mapping[str, Any]) -> RecipeConfig:
    """A RecipeConfig from a plain mapping (e.g. `cell.effective_recipe`), rejecting unknown keys."""
    unknown = sorted(set(data) - set(_fields()))
    if unknown:
        raise ConfigError(
            f"unknown recipe field(s) {', '.join(unknown)}",
            hint=f"valid fields: {', '.join(_fields())}",
        )
    recipe = RecipeConfig(**{k: copy.deepcopy(v) for k, v in data.items()})
    validate_recipe(recipe)
    return recipe


def apply_overrides(recipe: RecipeConfig, overrides: Mapping[str, Any] | None) -> RecipeConfig:
    """The recipe with a model's overrides (`model.recipe_overrides.<format>`) applied and validated."""
    merged = dataclasses.asdict(recipe)
    unknown = sorted(set(overrides or {}) - set(merged))
    if unknown:
        raise ConfigError(
            f"model.recipe_overrides names unknown recipe field(s) {', '.join(unknown)}",
            hint=f"valid fields: {', '.join(_fields())}",
        )
    merged.update(overrides or {})
    return recipe_from_mapping(merged)


def validate_recipe(recipe: RecipeConfig) -> None:
    """Checks the types cannot express; raises ConfigError naming the bad value and the valid ones."""

    def bad(what: str, hint: str) -> ConfigError:
        return ConfigError(f"recipe: {what}", hint=hint)

    if recipe.scheme not in _SCHEMES:
        raise bad(f"scheme {recipe.scheme!r} is not supported", f"valid choices: {', '.join(SCHEMES)}")
    if recipe.algorithm not in ALGORITHMS:
        raise bad(f"algorithm {recipe.algorithm!r} is not supported", f"valid choices: {', '.join(ALGORITHMS)}")
    is_group = _SCHEMES[recipe.scheme]["weights"]["strategy"] == "group"
    if is_group and (recipe.group_size is None or recipe.group_size <= 0):
        raise bad(f"scheme {recipe.scheme} needs a positive group_size", "set group_size (the study used 128)")
    if not is_group and recipe.group_size is not None:
        raise bad(f"scheme {recipe.scheme} quantizes per channel; group_size must be null", "remove group_size")
    if recipe.smoothquant_strength is not None and not 0 < recipe.smoothquant_strength <= 1:
        raise bad(f"smoothquant_strength={recipe.smoothquant_strength} is outside (0, 1]", "the study used 0.8")
    if recipe.actorder not in ACTORDERS:
        raise bad(f"actorder {recipe.actorder!r} is not supported", f"valid choices: {ACTORDERS}")
    if recipe.weight_observer not in WEIGHT_OBSERVERS:
        raise bad(f"weight_observer {recipe.weight_observer!r} is not supported", f"valid choices: {WEIGHT_OBSERVERS}")
    if recipe.algorithm == "rtn" and recipe.actorder is not None:
        raise bad("actorder only applies to GPTQ", "set actorder: null or algorithm: gptq")
    if not 0 <= recipe.dampening_frac < 1:
        raise bad(f"dampening_frac={recipe.dampening_frac} is outside [0, 1)", "the study used 0.01")
    for name in ("num_calibration_samples", "max_seq_length", "block_size"):
        if getattr(recipe, name) <= 0:
            raise bad(f"{name} must be positive", f"got {getattr(recipe, name)}")
    if recipe.calibration_dtype not in CALIBRATION_DTYPES:
        raise bad(
            f"calibration_dtype {recipe.calibration_dtype!r} is not supported",
            f"valid choices: {CALIBRATION_DTYPES} (None: the base checkpoint's own)",
        )
    if not recipe.targets:
        raise bad("targets is empty: nothing would be quantized", "use targets: [Linear]")


def _scheme_args(recipe: RecipeConfig) -> dict[str, Any]:
    group: dict[str, Any] = {"targets": list(recipe.targets)}
    for kind, args in _SCHEMES[recipe.scheme].items():
        args = dict(args)
        if kind == "weights":
            if args["strategy"] == "group":
                args["group_size"] = recipe.group_size
            if recipe.weight_observer is not None:
                args["observer"] = recipe.weight_observer
        group[kind] = args
    return {"group_0": group}


def render_modifiers(recipe: RecipeConfig) -> list[ModifierSpec]:
    """The recipe as an ordered list of llm-compressor modifiers (smoothing must run before quantization)."""
    validate_recipe(recipe)
    modifiers: list[ModifierSpec] = []
    if recipe.smoothquant_strength is not None:
        # mappings are left to llm-compressor, which infers them per architecture (Llama: norms -> q/k/v, gate/up).
        modifiers.append(ModifierSpec("SmoothQuantModifier", {"smoothing_strength": recipe.smoothquant_strength}))
    args: dict[str, Any] = {"ignore": list(recipe.ignore), "config_groups": _scheme_args(recipe)}
    if recipe.algorithm == "gptq":
        # actorder is always explicit: leaving it out would silently pick llm-compressor's current default.
        args.update(block_size=recipe.block_size, dampening_frac=recipe.dampening_frac, actorder=recipe.actorder)
        modifiers.append(ModifierSpec("GPTQModifier", args))
    else:
        modifiers.append(ModifierSpec("QuantizationModifier", args))
    return modifiers


def render_recipe_yaml(recipe: RecipeConfig) -> str:
    """llm-compressor's YAML recipe (one stage) for the recipe; `oneshot(recipe=<this string>)` accepts it."""
    import yaml  # deferred: only rendering needs it

    stage = {m.type: m.args for m in render_modifiers(recipe)}
    return yaml.safe_dump({"quant_stage": {"quant_modifiers": stage}}, sort_keys=False, default_flow_style=False)


def calibration_params(recipe: RecipeConfig) -> dict[str, int | str] | None:
    """The calibration settings that change the result; None when the recipe is data-free."""
    if not recipe.needs_calibration:
        return None
    params: dict[str, int | str] = {
        "num_samples": recipe.num_calibration_samples,
        "max_seq_length": recipe.max_seq_length,
        "seed": recipe.calibration_seed,
    }
    if recipe.calibration_dtype is not None:  # absent when unset: checkpoints made before the field keep their key
        params["dtype"] = recipe.calibration_dtype
    return params


def recipe_hash(recipe: RecipeConfig) -> str:
    """sha256 of what the recipe does: the rendered modifiers and the calibration settings.

    Fields that cannot change the checkpoint do not count (the calibration file's path: its content hash is part
    of the cache key instead; calibration settings of a data-free recipe), so equivalent spellings share a cache
    entry while any change in rendering or settings gets a new one.
    """
    payload = {
        "version": RECIPE_FORMAT_VERSION,
        "modifiers": [dataclasses.asdict(m) for m in render_modifiers(recipe)],
        "calibration": calibration_params(recipe),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
