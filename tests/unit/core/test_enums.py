"""The closed sets (evalkit.core.enums) keep their strings through YAML, Parquet and hashes, and Hydra refuses a value
outside them naming the valid ones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from paths import REPO

from evalkit.checkpoints.recipes import SCHEMES
from evalkit.core.cell import Cell, CheckpointRef, stable_hash
from evalkit.core.enums import CellState, CheckpointSource, Phase, QuantScheme, RowStatus
from evalkit.core.errors import ConfigError
from evalkit.core.records import TaskScore
from evalkit.pipeline.compose import compose_grid
from evalkit.pipeline.plan import typed
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(REPO)
    yield


def one_job(*overrides: str):  # type: ignore[no-untyped-def]
    (cfg,) = compose_grid(["benchmark=smoke_generate", *overrides])
    return cfg


def test_phase_source_and_scheme_are_enums_that_read_and_write_their_yaml_strings() -> None:
    cfg = one_job("format=w8a8", "phase=generate")
    job = typed(cfg)
    assert job.phase is Phase.generate and job.phase == "generate"
    assert job.model.checkpoints["w8a8"].source is CheckpointSource.recipe
    assert job.format.recipe is not None and job.format.recipe.scheme is QuantScheme.W8A8
    text = OmegaConf.to_yaml(cfg)
    assert "phase: generate" in text and "scheme: W8A8" in text and "source: recipe" in text
    again = typed(OmegaConf.merge(cfg, OmegaConf.create(text)))
    assert again.phase is Phase.generate and again.format.recipe is not None
    assert again.format.recipe.scheme is QuantScheme.W8A8


@pytest.mark.parametrize(
    "override, valid",
    [
        ("phase=later", "all, generate, score"),
        ("model.checkpoints.bf16.source=ftp", "hub, path, recipe, gguf"),
        ("format=w8a8 format.recipe.scheme=W3A16", "FP8_DYNAMIC, W8A8, W4A16"),
    ],
)
def test_a_value_outside_the_enum_fails_in_hydra_naming_the_valid_ones(override: str, valid: str) -> None:
    with pytest.raises(ConfigError) as info:
        one_job(*override.split())
    assert valid in info.value.message


def test_recipes_spell_out_exactly_the_enums_schemes() -> None:
    assert SCHEMES == tuple(QuantScheme) == ("FP8_DYNAMIC", "W8A8", "W4A16")


def test_enum_values_hash_as_their_strings_so_cell_ids_did_not_move() -> None:
    assert stable_hash({"phase": Phase.score, "source": CheckpointSource.hub}) == stable_hash(
        {"phase": "score", "source": "hub"}
    )


def test_statuses_round_trip_through_parquet(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    ok = Cell("m", "bf16", "b_one", "s", CheckpointRef(CheckpointSource.hub, "org/m"), "a" * 64)
    bad = Cell("m", "bf16", "b_two", "s", CheckpointRef(CheckpointSource.recipe, "0123abcd"), "b" * 64)
    now = datetime.now(timezone.utc)
    prov = Provenance("0", "c", "0", "0", "/ckpt", "h")
    store.commit_cell(ok, RunInfo(new_run_id(), now, now, "/log", prov), [TaskScore("t", "acc", 50.0)], [])
    store.record_failure(bad, RunInfo(new_run_id(), now, now, "/log", prov), "boom")
    df = store.read_scores().set_index("benchmark")
    assert df.loc["b_one", "status"] == "ok" and RowStatus(df.loc["b_one", "status"]) is RowStatus.ok
    assert RowStatus(df.loc["b_two", "status"]) is RowStatus.failed
    assert df.loc["b_one", "checkpoint"] == "hub:org/m" and df.loc["b_two", "checkpoint"] == "recipe:0123abcd"
    assert CheckpointRef.decode(df.loc["b_two", "checkpoint"]) == bad.checkpoint
    assert store.cell_record(ok).state is CellState.DONE and store.cell_record(bad).state is CellState.FAILED
