"""Local data binds to the benchmark that ships it: the study grid, composed from conf/ with Hydra, puts no data
override into any real cell, demo cells get theirs, and a real benchmark reads a local copy only when it is the
complete dataset `evalkit prefetch` recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths import REPO

from evalkit.cli import _compose_jobs
from evalkit.core.datasources import content_hash, dataset_record, read_rows, write_manifest
from evalkit.core.errors import ConfigError
from evalkit.pipeline.job import cell_contexts, cell_data
from evalkit.pipeline.plan import JobPlan
from evalkit.util.hashing import sha256_file

STUDY = [
    "model=llama-3.1-8b-instruct",
    "format=bf16,fp8,w8a8,w4a16",
    "benchmark=leaderboard_v1,leaderboard_v2,arena_hard,humaneval,ruler",
    "server=gpu",
]
REAL = {"leaderboard_v1", "leaderboard_v2", "arena_hard", "humaneval", "ruler"}
GSM8K_DEMO = REPO / "data" / "openai" / "gsm8k" / "main" / "test.jsonl"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Relative demo paths resolve from the repository; the store and the Hub cache (manifest) live in tmp."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    yield


def plans(tmp_path: Path, *overrides: str) -> list[JobPlan]:
    composed = _compose_jobs([*overrides, f"paths.results={tmp_path / 'results'}"], check_adapters=False)
    return [p for p in composed if isinstance(p, JobPlan)]


def test_study_grid_has_no_data_override_in_any_real_cell(tmp_path: Path) -> None:
    study = plans(tmp_path, *STUDY)
    assert len(study) == 4
    for plan in study:
        assert {c.benchmark for c in plan.cells} == REAL
        ctx_of = cell_contexts(plan.cfg, tmp_path / "jobs")
        for cell in plan.cells:
            assert plan.cfg.benchmarks[cell.benchmark].data == {}
            assert ctx_of(cell, None).data_overrides == {}, cell.benchmark


def test_demo_cells_get_their_own_data(tmp_path: Path) -> None:
    (demo,) = plans(tmp_path, "benchmark=demo_leaderboard_v1,demo_leaderboard_v2,leaderboard_v1")
    ctx_of = cell_contexts(demo.cfg, tmp_path / "jobs")
    by_bench = {c.benchmark: ctx_of(c, None).data_overrides for c in demo.cells}
    assert by_bench["demo_leaderboard_v1"]["openai/gsm8k:main"] == {"test": str(GSM8K_DEMO)}
    assert "TIGER-Lab/MMLU-Pro" in by_bench["demo_leaderboard_v2"]
    assert by_bench["leaderboard_v1"] == {}  # same job, same server: still no demo data


def test_demo_data_edit_makes_only_demo_cells_stale(tmp_path: Path) -> None:
    grid = ("benchmark=demo_leaderboard_v1,leaderboard_v1",)
    before = {c.benchmark: c.cell_id for c in plans(tmp_path, *grid)[0].cells}
    edited = tmp_path / "gsm8k.jsonl"
    edited.write_text(GSM8K_DEMO.read_text().splitlines()[0] + "\n")
    after_plan = plans(tmp_path, *grid, f"benchmarks.demo_leaderboard_v1.data.gsm8k.data_files.test={edited}")[0]
    after = {c.benchmark: c.cell_id for c in after_plan.cells}
    assert after["leaderboard_v1"] == before["leaderboard_v1"]
    assert after["demo_leaderboard_v1"] != before["demo_leaderboard_v1"]


def test_demo_mark_only_on_demo_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"benchmarks.leaderboard_v1.demo=True"):
        plans(tmp_path, "benchmark=leaderboard_v1", "benchmarks.leaderboard_v1.demo=true")
    with pytest.raises(ConfigError, match=r"benchmarks.demo_ruler.demo=False"):
        plans(tmp_path, "benchmark=demo_ruler", "benchmarks.demo_ruler.demo=false")


LOCAL_COPIES = "+data@benchmarks.leaderboard_v1.data=demo"
"""How a user points a real benchmark at local copies: a file in conf/data/ bound to that benchmark alone (here the
shipped demo data, i.e. copies that are far from complete)."""


def _manifest_of_demo_files(tmp_path: Path, **changed: int) -> None:
    """A prefetch manifest recording each demo dataset as exactly its shipped files, except `changed` datasets
    (conf/data/demo.yaml key -> rows) recorded with another row count."""
    entries = yaml.safe_load((REPO / "conf" / "data" / "demo.yaml").read_text())
    records = {}
    for key, e in entries.items():
        splits = {split: read_rows(REPO / f) for split, f in e["data_files"].items()}
        if key in changed:
            splits = {s: [{"i": i} for i in range(changed[key])] for s in splits}
        dataset_id = e["path"] if e.get("name") is None else f"{e['path']}:{e['name']}"
        records[dataset_id] = dataset_record("abc123", splits)
    write_manifest(tmp_path / "hf" / "datasets_manifest.json", records)


def test_real_benchmark_refuses_an_incomplete_local_copy_with_the_numbers(tmp_path: Path) -> None:
    _manifest_of_demo_files(tmp_path, gsm8k=1319)
    with pytest.raises(ConfigError) as err:
        plans(tmp_path, "benchmark=leaderboard_v1", LOCAL_COPIES)
    msg = str(err.value)
    assert "gsm8k test: 4 rows, expected 1319" in msg and "benchmarks.leaderboard_v1.data" in msg
    assert "winogrande" not in msg  # the copies that match are not listed


def test_real_benchmark_refuses_a_copy_with_other_content(tmp_path: Path) -> None:
    _manifest_of_demo_files(tmp_path)
    altered = tmp_path / "gsm8k.jsonl"
    altered.write_text("".join(json.dumps({**r, "answer": "#### 0"}) + "\n" for r in read_rows(GSM8K_DEMO)))
    with pytest.raises(ConfigError, match="gsm8k test: 4 rows as expected, but their content differs"):
        plans(
            tmp_path,
            "benchmark=leaderboard_v1",
            LOCAL_COPIES,
            f"benchmarks.leaderboard_v1.data.gsm8k.data_files.test={altered}",
        )


def test_real_benchmark_accepts_copies_that_match_the_manifest(tmp_path: Path) -> None:
    _manifest_of_demo_files(tmp_path)
    (plan,) = plans(tmp_path, "benchmark=leaderboard_v1", LOCAL_COPIES)
    cell = plan.cells[0]
    ctx = cell_contexts(plan.cfg, tmp_path / "jobs")(cell, None)
    assert ctx.data_overrides["openai/gsm8k:main"] == {"test": str(GSM8K_DEMO)}
    assert ctx.hub_revisions["openai/gsm8k:main"] == "abc123"


def test_lm_eval_sources_local_where_overridden_hub_with_revision_elsewhere(tmp_path: Path) -> None:
    from evalkit.benchmarks import RunContext
    from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
    from evalkit.benchmarks.lm_eval.offline import TaskEntry
    from evalkit.core.datasources import DatasetRef

    catalog = {
        "gsm8k_llama": TaskEntry("gsm8k_llama", "task", None, DatasetRef("openai/gsm8k", "main")),
        "hellaswag": TaskEntry("hellaswag", "task", None, DatasetRef("Rowan/hellaswag")),
        "winogrande": TaskEntry("winogrande", "task", None, DatasetRef("allenai/winogrande", "winogrande_xl")),
    }
    runs = [{"name": "a", "tasks": ["gsm8k_llama", "hellaswag"]}, {"name": "b", "tasks": ["winogrande"]}]
    ctx = RunContext(
        endpoint=None,
        work_dir=tmp_path,
        settings=LmEvalSuite().parse_settings({"runs": runs}),
        data_overrides={"openai/gsm8k:main": {"test": str(GSM8K_DEMO)}},
        hub_revisions={"Rowan/hellaswag": "rev1"},
    )
    sources = {s.dataset: s for s in LmEvalSuite(catalog=lambda: catalog).data_sources(ctx)}
    gsm8k = sources["openai/gsm8k:main"]
    assert (gsm8k.path, gsm8k.split, gsm8k.rows, gsm8k.hub_revision) == (str(GSM8K_DEMO), "test", 4, None)
    assert gsm8k.sha256 == sha256_file(GSM8K_DEMO)
    assert sources["Rowan/hellaswag"].hub_revision == "rev1" and sources["Rowan/hellaswag"].path is None
    assert sources["allenai/winogrande:winogrande_xl"].hub_revision == "unpinned"
    assert not any(name.startswith("ruler") for name in sources)


def test_ruler_sources_name_generated_documents_and_pinned_files(tmp_path: Path) -> None:
    from evalkit.benchmarks import RunContext
    from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
    from evalkit.benchmarks.lm_eval.offline import TaskEntry
    from evalkit.benchmarks.lm_eval.ruler_data import FILES

    catalog = {t: TaskEntry(t, "task", None) for t in ("niah_single_1", "ruler_qa_squad")}
    runs = [{"name": "r", "tasks": ["niah_single_1", "ruler_qa_squad"], "max_seq_lengths": [4096]}]
    settings = {"runs": runs, "ruler_data_dir": str(tmp_path / "ruler")}
    ctx = RunContext(endpoint=None, work_dir=tmp_path, settings=LmEvalSuite().parse_settings(settings))
    sources = {s.dataset: s for s in LmEvalSuite(catalog=lambda: catalog).data_sources(ctx)}
    assert "ruler documents, generated at load time with the served tokenizer" in sources
    squad = sources["ruler squad"]
    assert (squad.path, squad.sha256) == (str(tmp_path / "ruler" / "squad.json"), FILES["squad"].sha256)
    assert "ruler essays" not in sources  # niah_single_1 repeats a fixed haystack: no source file


def test_real_benchmark_without_prefetch_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gsm8k \(openai/gsm8k:main\): no prefetch record"):
        plans(tmp_path, "benchmark=leaderboard_v1", LOCAL_COPIES)


def test_demo_benchmarks_are_exempt_from_the_manifest(tmp_path: Path) -> None:
    _manifest_of_demo_files(tmp_path, gsm8k=1319)
    assert plans(tmp_path, "benchmark=demo_leaderboard_v1")  # 4 rows of GSM8K, allowed: it is marked demo


def test_missing_demo_file_fails_at_plan_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"benchmarks.smoke_generate.data.arc_challenge.data_files.test: file"):
        plans(
            tmp_path,
            "benchmark=smoke_generate",
            f"benchmarks.smoke_generate.data.arc_challenge.data_files.test={tmp_path / 'nope.jsonl'}",
        )


def test_hub_split_and_its_jsonl_export_hash_equal(tmp_path: Path) -> None:
    import datasets

    rows: list[dict[str, Any]] = [json.loads(x) for x in GSM8K_DEMO.read_text().splitlines()]
    split = datasets.Dataset.from_list(rows)
    export = tmp_path / "test.jsonl"
    split.to_json(str(export))
    record = dataset_record("rev", datasets.DatasetDict({"test": split}))
    assert (record.splits["test"].rows, record.splits["test"].sha256) == content_hash(read_rows(export))
    assert content_hash(read_rows(GSM8K_DEMO)) == (4, record.splits["test"].sha256)


def test_cells_record_their_data_sources(tmp_path: Path) -> None:
    (plan,) = plans(tmp_path, "benchmark=demo_arena_hard,demo_humaneval,arena_hard")
    ctx_of = cell_contexts(plan.cfg, tmp_path / "jobs")
    by_bench = {c.benchmark: cell_data(plan.cfg, c, ctx_of(c, None)) for c in plan.cells}
    demo_arena = json.loads(by_bench["demo_arena_hard"].sources)
    questions = next(s for s in demo_arena if s["dataset"] == "arena_hard questions")
    assert questions["path"] == str(REPO / "data" / "arena_hard" / "demo" / "question.jsonl")
    assert questions["rows"] == 6 and len(questions["sha256"]) == 64
    (problems,) = json.loads(by_bench["demo_humaneval"].sources)
    assert problems["dataset"] == "humaneval_plus problems" and problems["rows"] == 4
    assert by_bench["demo_arena_hard"].overridden and by_bench["demo_humaneval"].overridden
    # the real arena_hard has not been prefetched here: its sources say what is unresolved, and it is not overridden
    assert not by_bench["arena_hard"].overridden
    assert "unresolved" in by_bench["arena_hard"].sources
