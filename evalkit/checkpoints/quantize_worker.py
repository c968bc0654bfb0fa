"""Quantize one checkpoint with llm-compressor. Runs inside .venv-quant, started by `quantize.py`.

Standalone on purpose: .venv-quant has llmcompressor, compressed-tensors and a transformers version that the
serving environment cannot have, and none of evalkit. So this file imports only the standard library and the
quantization stack, and everything it needs arrives in one JSON spec:

    {"base": dir, "output": dir, "threads": int, "result": file,
     "modifiers": [{"type": "GPTQModifier", "args": {...}}, ...], "calibration_dtype": null | "float32",
     "calibration": null | {"samples": [text | [{"role", "content"}, ...]], "max_seq_length": int}}

It writes the compressed-tensors checkpoint into `output` (a temporary directory the caller renames into place only
after checking it) and a small JSON result (tool versions, calibration token count) to `result`.
Rerun by hand:  OMP_NUM_THREADS=2 .venv-quant/bin/python evalkit/checkpoints/quantize_worker.py --spec <spec.json>
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Files of the base checkpoint copied verbatim, so the quantized checkpoint keeps the exact tokenizer and chat
# template (re-saving through this environment's transformers could rewrite them).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
VERSIONED = ("llmcompressor", "compressed-tensors", "transformers", "torch", "accelerate", "datasets")


def _log(msg: str) -> None:
    print(f"[quantize_worker {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _exit_with_parent() -> None:
    """Stop when the process that started us dies, so a killed run leaves no orphan burning CPU."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(2)
            if os.getppid() != parent:
                _log("parent process is gone; exiting")
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _build_modifiers(specs: list[dict[str, Any]]) -> list[Any]:
    # Explicit imports (not the YAML name registry) so a moved class fails loudly here, not as a silent fallback.
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    classes = {c.__name__: c for c in (GPTQModifier, QuantizationModifier, SmoothQuantModifier)}
    modifiers = []
    for spec in specs:
        if spec["type"] not in classes:
            raise SystemExit(f"unknown modifier {spec['type']!r}; this worker knows {sorted(classes)}")
        modifiers.append(classes[spec["type"]](**spec["args"]))
    return modifiers


def _calibration_dataset(tokenizer: Any, calibration: dict[str, Any]) -> tuple[Any, int]:
    from datasets import Dataset

    max_len = int(calibration["max_seq_length"])
    has_template = getattr(tokenizer, "chat_template", None) is not None
    ids: list[list[int]] = []
    for sample in calibration["samples"]:
        if isinstance(sample, list):
            if has_template:
                text = tokenizer.apply_chat_template(sample, tokenize=False)
                # the template already carries the special tokens the model sees at inference time
                enc = tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_len)
            else:
                text = "\n\n".join(f"{m['role']}: {m['content']}" for m in sample)
                enc = tokenizer(text, truncation=True, max_length=max_len)
        else:
            enc = tokenizer(sample, truncation=True, max_length=max_len)
        ids.append(list(enc["input_ids"]))
    dataset = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]})
    return dataset, sum(len(x) for x in ids)


def _base_dtype(base: Path) -> str:
    config = json.loads((base / "config.json").read_text())
    return str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")


def _restore_dtype(output: Path, dtype: str) -> None:
    """Give a checkpoint calibrated in another dtype the base's dtype, as if calibrated in it: every floating
    tensor (scales, norms, embeddings, lm_head) is rounded to `dtype` once, after compression, so the integer
    weights are those GPTQ chose from the higher-precision values; the config says `dtype`."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    target = getattr(torch, dtype)
    for path in sorted(output.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
        tensors = {k: t.to(target) if t.is_floating_point() else t for k, t in tensors.items()}
        save_file(tensors, str(path), metadata=metadata)
    config_path = output / "config.json"
    config = json.loads(config_path.read_text())
    for key in ("dtype", "torch_dtype"):
        if key in config:
            config[key] = dtype
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    _log(f"floating tensors rounded to {dtype} after compression")


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run(spec: dict[str, Any]) -> dict[str, Any]:
    threads = int(spec["threads"])
    import torch

    torch.set_num_threads(threads)
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, output = Path(spec["base"]), Path(spec["output"])
    calibration_dtype = spec.get("calibration_dtype")  # None: the base checkpoint's own dtype
    _log(f"pid {os.getpid()}: loading {base} (threads={threads}, dtype={calibration_dtype or 'auto'})")
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=getattr(torch, calibration_dtype) if calibration_dtype else "auto"
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    modifiers = _build_modifiers(spec["modifiers"])
    kwargs: dict[str, Any] = {}
    tokens = 0
    if spec.get("calibration"):
        dataset, tokens = _calibration_dataset(tokenizer, spec["calibration"])
        _log(f"calibration: {len(dataset)} samples, {tokens} tokens")
        kwargs = {
            "dataset": dataset,
            "num_calibration_samples": len(dataset),
            "max_seq_length": int(spec["calibration"]["max_seq_length"]),
            "shuffle_calibration_samples": False,  # the caller already picked a seeded subset
        }
    _log(f"oneshot with {[type(m).__name__ for m in modifiers]}")
    oneshot(model=model, tokenizer=tokenizer, recipe=modifiers, **kwargs)
    _log(f"saving compressed checkpoint to {output}")
    model.save_pretrained(output, save_compressed=True)
    if calibration_dtype:
        _restore_dtype(output, _base_dtype(base))
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, output / name)
    return {"tool_versions": _versions(), "calibration_tokens": tokens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=Path, help="JSON spec written by evalkit.checkpoints.quantize")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    _exit_with_parent()
    started = time.monotonic()
    result = run(spec)
    result["worker_seconds"] = round(time.monotonic() - started, 2)
    Path(spec["result"]).write_text(json.dumps(result, indent=2))
    _log(f"done in {result['worker_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
