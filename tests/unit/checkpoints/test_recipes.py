"""Recipes: rendering (golden files), hash stability and sensitivity, validation, overrides, schema compatibility."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from golden import check_golden as _check
from omegaconf import OmegaConf
from paths import REPO

from evalkit.checkpoints.recipes import (
    SCHEMES,
    RecipeConfig,
    apply_overrides,
    recipe_from_mapping,
    recipe_hash,
    render_modifiers,
    render_recipe_yaml,
    validate_recipe,
)
from evalkit.core.errors import ConfigError

GOLDEN = Path(__file__).with_name("golden")
FORMATS = ("fp8", "w8a8", "w4a16")


def format_recipe(name: str) -> RecipeConfig:
    """The recipe of conf/format/<name>.yaml, as the job runner gets it."""
    data = yaml.safe_load((REPO / "conf" / "format" / f"{name}.yaml").read_text())
    return recipe_from_mapping(data["recipe"])


def check_golden(name: str, text: str) -> None:
    _check(GOLDEN / name, text, "and bump RECIPE_FORMAT_VERSION if it changes what the quantizer produces.")


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_recipe_renders_as_golden(fmt: str) -> None:
    check_golden(f"{fmt}.recipe.yaml", render_recipe_yaml(format_recipe(fmt)))


def test_demo_w4a16_override_renders_as_golden() -> None:
    recipe = apply_overrides(format_recipe("w4a16"), {"group_size": 64})
    check_golden("w4a16-group64.recipe.yaml", render_recipe_yaml(recipe))


def test_recipe_hashes_are_pinned() -> None:
    """A hash change invalidates every cached checkpoint: it must be deliberate (golden file)."""
    hashes = {fmt: recipe_hash(format_recipe(fmt)) for fmt in FORMATS}
    hashes["w4a16-group64"] = recipe_hash(apply_overrides(format_recipe("w4a16"), {"group_size": 64}))
    check_golden("recipe_hashes.json", json.dumps(hashes, indent=2, sort_keys=True) + "\n")


def test_same_recipe_same_hash() -> None:
    a = RecipeConfig(scheme="W4A16", algorithm="gptq", group_size=128, weight_observer="memoryless_mse")
    b = RecipeConfig(scheme="W4A16", algorithm="gptq", group_size=128, weight_observer="memoryless_mse")
    assert a is not b
    assert recipe_hash(a) == recipe_hash(b)
    assert recipe_hash(a) == recipe_hash(recipe_from_mapping(dataclasses.asdict(a)))


@pytest.mark.parametrize(
    "change",
    [
        {"group_size": 64},
        {"weight_observer": None},
        {"dampening_frac": 0.1},
        {"actorder": "static"},
        {"ignore": []},
        {"smoothquant_strength": 0.5},
        {"num_calibration_samples": 16},
        {"max_seq_length": 512},
        {"calibration_seed": 1},
        {"calibration_dtype": "float32"},
    ],
)
def test_any_effective_change_changes_the_hash(change: dict[str, object]) -> None:
    base = format_recipe("w4a16")
    assert recipe_hash(apply_overrides(base, change)) != recipe_hash(base)


def test_fields_that_cannot_change_the_checkpoint_keep_the_hash() -> None:
    # the calibration file's content hash is part of the cache key; its path is not
    w4 = format_recipe("w4a16")
    assert recipe_hash(apply_overrides(w4, {"calibration_file": "/elsewhere/same.jsonl"})) == recipe_hash(w4)
    # FP8-dynamic RTN is data-free: calibration settings do not matter
    fp8 = format_recipe("fp8")
    assert not fp8.needs_calibration
    assert recipe_hash(apply_overrides(fp8, {"num_calibration_samples": 3, "max_seq_length": 7})) == recipe_hash(fp8)
    assert recipe_hash(apply_overrides(fp8, {"calibration_dtype": "float32"})) == recipe_hash(fp8)


def test_unset_calibration_dtype_keeps_the_hash_of_checkpoints_made_before_it() -> None:
    w4 = format_recipe("w4a16")
    assert w4.calibration_dtype is None
    assert recipe_hash(w4) == recipe_hash(apply_overrides(w4, {"calibration_dtype": None}))
    with pytest.raises(ConfigError, match="calibration_dtype"):
        validate_recipe(apply_overrides(w4, {"calibration_dtype": "fp32"}))


def test_w8a8_runs_smoothquant_before_gptq_and_can_drop_it() -> None:
    w8a8 = format_recipe("w8a8")
    assert [m.type for m in render_modifiers(w8a8)] == ["SmoothQuantModifier", "GPTQModifier"]
    no_sq = apply_overrides(w8a8, {"smoothquant_strength": None})
    assert [m.type for m in render_modifiers(no_sq)] == ["GPTQModifier"]
    assert recipe_hash(no_sq) != recipe_hash(w8a8)


def test_study_settings() -> None:
    """The formats encode the study: lm_head kept, GPTQ 1% dampening, W4A16 group 128 with MSE clipping."""
    fp8, w8a8, w4a16 = (render_modifiers(format_recipe(f))[-1] for f in FORMATS)
    assert fp8.type == "QuantizationModifier"
    for mod in (fp8, w8a8, w4a16):
        assert mod.args["ignore"] == ["lm_head"]
    for mod in (w8a8, w4a16):
        assert mod.type == "GPTQModifier"
        assert mod.args["dampening_frac"] == 0.01
        assert mod.args["actorder"] is None
    weights = w4a16.args["config_groups"]["group_0"]["weights"]
    assert weights == {
        "num_bits": 4,
        "type": "int",
        "strategy": "group",
        "symmetric": True,
        "dynamic": False,
        "group_size": 128,
        "observer": "memoryless_mse",
    }
    assert "input_activations" not in w4a16.args["config_groups"]["group_0"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_schemes_match_compressed_tensors_presets(scheme: str) -> None:
    """Our spelt-out schemes equal the compressed-tensors presets of the same name (bar group size / observer)."""
    quant_scheme = pytest.importorskip("compressed_tensors.quantization.quant_scheme")
    preset = quant_scheme.PRESET_SCHEMES[scheme]
    recipe = RecipeConfig(scheme=scheme, group_size=128 if scheme == "W4A16" else None)
    group = render_modifiers(recipe)[-1].args["config_groups"]["group_0"]
    for kind in ("weights", "input_activations"):
        ours, theirs = group.get(kind), preset.get(kind)
        assert (ours is None) == (theirs is None), kind
        if ours is None:
            continue
        theirs_dict = theirs.model_dump(mode="json")
        for key, value in ours.items():
            assert theirs_dict[key] == value, f"{scheme}.{kind}.{key}: ours {value!r}, preset {theirs_dict[key]!r}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scheme": "W3A16"}, "valid choices: FP8_DYNAMIC, W8A8, W4A16"),
        ({"scheme": "W4A16"}, "needs a positive group_size"),
        ({"scheme": "FP8_DYNAMIC", "group_size": 64}, "group_size must be null"),
        ({"scheme": "W8A8", "algorithm": "awq"}, "valid choices: rtn, gptq"),
        ({"scheme": "W8A8", "smoothquant_strength": 1.5}, "outside (0, 1]"),
        ({"scheme": "W8A8", "algorithm": "gptq", "actorder": "group"}, "actorder"),
        ({"scheme": "W8A8", "actorder": "static"}, "only applies to GPTQ"),
        ({"scheme": "W8A8", "weight_observer": "mse"}, "memoryless_mse"),
        ({"scheme": "W8A8", "max_seq_length": 0}, "max_seq_length must be positive"),
    ],
)
def test_invalid_recipes_say_what_is_valid(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        recipe_from_mapping(fields)
    assert message in str(err.value)


def test_unknown_override_lists_valid_fields() -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(format_recipe("w4a16"), {"groupsize": 64})
    assert "groupsize" in str(err.value) and "group_size" in str(err.value)


def test_overrides_do_not_mutate_the_format_recipe() -> None:
    w4a16 = format_recipe("w4a16")
    changed = apply_overrides(w4a16, {"group_size": 64, "ignore": ["lm_head", "model.embed_tokens"]})
    assert (w4a16.group_size, w4a16.ignore) == (128, ["lm_head"])
    assert (changed.group_size, changed.ignore) == (64, ["lm_head", "model.embed_tokens"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_recipe_is_a_valid_structured_config(fmt: str) -> None:
    """Hydra validates conf/format/*.yaml against RecipeConfig: the yaml must merge into it and round-trip."""
    data = yaml.safe_load((REPO / "conf" / "format" / f"{fmt}.yaml").read_text())["recipe"]
    merged = OmegaConf.merge(OmegaConf.structured(RecipeConfig), data)
    assert OmegaConf.to_object(merged) == format_recipe(fmt)
    with pytest.raises(Exception, match="grop_size"):
        OmegaConf.merge(OmegaConf.structured(RecipeConfig), {**data, "grop_size": 1})


def test_format_files_have_the_schema_fields() -> None:
    labels = {}
    for fmt in ("bf16", *FORMATS):
        data = yaml.safe_load((REPO / "conf" / "format" / f"{fmt}.yaml").read_text())
        assert set(data) == {"name", "label", "recipe", "vllm_args"}, fmt
        assert data["name"] == fmt
        assert isinstance(data["vllm_args"], dict)
        labels[fmt] = data["label"]
    assert labels == {"bf16": "BF16", "fp8": "W8A8-FP", "w8a8": "W8A8-INT", "w4a16": "W4A16-INT"}
    assert yaml.safe_load((REPO / "conf" / "format" / "bf16.yaml").read_text())["recipe"] is None
