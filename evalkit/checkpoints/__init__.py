"""The checkpoint stage: convert the demo GGUF to bf16, quantize bf16 checkpoints with llm-compressor recipes, and
cache both with provenance manifests.

The job runner calls `ensure_converted` (source gguf) and `ensure_quantized` (source recipe); both return a
directory vLLM can serve with dtype=auto. Heavy libraries (torch, transformers, llmcompressor) are only imported in
the child processes these start.
"""

from evalkit.checkpoints.gguf import ensure_converted, resolve_gguf
from evalkit.checkpoints.manifest import (
    MANIFEST_NAME,
    CalibrationRecord,
    ConversionManifest,
    QuantizeManifest,
    read_manifest,
)
from evalkit.checkpoints.quantize import ensure_quantized, find_quantized, locate, recipe_identity
from evalkit.checkpoints.recipes import (
    apply_overrides,
    recipe_from_mapping,
    recipe_hash,
    render_modifiers,
    render_recipe_yaml,
    validate_recipe,
)
from evalkit.core.config import RecipeConfig

__all__ = [
    "MANIFEST_NAME",
    "CalibrationRecord",
    "ConversionManifest",
    "QuantizeManifest",
    "RecipeConfig",
    "apply_overrides",
    "ensure_converted",
    "ensure_quantized",
    "find_quantized",
    "locate",
    "read_manifest",
    "recipe_from_mapping",
    "recipe_hash",
    "recipe_identity",
    "render_modifiers",
    "render_recipe_yaml",
    "resolve_gguf",
    "validate_recipe",
]
