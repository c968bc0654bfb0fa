"""Offline data overrides: config resolution, task expansion, generated task YAMLs, the shipped demo data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from paths import REPO

from evalkit.benchmarks.lm_eval.offline import (
    TaskEntry,
    datasets_for_tasks,
    ensure_punkt_tab,
    expand_tasks,
    offline_env,
    render_override_tasks,
    task_entry_from_config,
    write_override_tasks,
)
from evalkit.core.datasources import DatasetRef, resolve_overrides
from evalkit.core.errors import ConfigError

DEMO_DATA = REPO / "conf" / "data" / "demo.yaml"
UP = Path("/upstream")

CATALOG = {
    "mmlu_x_a": TaskEntry(
        "mmlu_x_a",
        "task",
        UP / "a.yaml",
        DatasetRef("hails/mmlu_no_train", "a"),
        {"test_split": "test", "fewshot_split": "dev"},
        "generate_until",
        num_fewshot=5,
    ),
    "mmlu_x_b": TaskEntry(
        "mmlu_x_b",
        "task",
        UP / "b.yaml",
        DatasetRef("hails/mmlu_no_train", "b"),
        {"test_split": "test", "fewshot_split": "dev"},
        "generate_until",
        num_fewshot=5,
    ),
    "mmlu_x_tasks": TaskEntry("mmlu_x_tasks", "tag", None, members=("mmlu_x_a", "mmlu_x_b")),
    "mmlu_x": TaskEntry("mmlu_x", "group", UP / "g.yaml", members=("mmlu_x_tasks",)),
    "hs": TaskEntry(
        "hs",
        "task",
        UP / "hs.yaml",
        DatasetRef("Rowan/hellaswag"),
        {"validation_split": "validation", "training_split": "train"},
        "multiple_choice",
    ),
    "gsm": TaskEntry(
        "gsm",
        "task",
        UP / "gsm.yaml",
        DatasetRef("openai/gsm8k", "main"),
        {"test_split": "test"},
        "generate_until",
        num_fewshot=8,
        fewshot_samples=True,
    ),
}


def test_dataset_ids_round_trip() -> None:
    for ref in (DatasetRef("hails/mmlu_no_train", "astronomy"), DatasetRef("Rowan/hellaswag")):
        assert DatasetRef.parse(ref.id) == ref
    assert DatasetRef("openai/gsm8k", "main").id == "openai/gsm8k:main"


def test_offline_env() -> None:
    assert offline_env() == {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    assert offline_env(False) == {}


def test_resolve_overrides_makes_paths_absolute(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "test.jsonl").write_text("{}\n")
    out = resolve_overrides(
        {"x": {"path": "openai/gsm8k", "name": "main", "data_files": {"test": "d/test.jsonl"}}}, tmp_path
    )
    assert out == {"openai/gsm8k:main": {"test": str(tmp_path / "d" / "test.jsonl")}}


def test_resolve_overrides_reports_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_overrides({"x": {"path": "p", "data_files": {"test": "nope.jsonl"}}}, tmp_path)
    assert "data.x.data_files.test" in err.value.message and "nope.jsonl" in err.value.message


def test_expand_and_list_datasets() -> None:
    assert expand_tasks(["mmlu_x", "hs", "mmlu_x_a"], CATALOG) == ["mmlu_x_a", "mmlu_x_b", "hs"]
    assert [r.id for r in datasets_for_tasks(["mmlu_x", "gsm"], CATALOG)] == [
        "hails/mmlu_no_train:a",
        "hails/mmlu_no_train:b",
        "openai/gsm8k:main",
    ]
    with pytest.raises(ConfigError, match="unknown lm-eval task 'mmlu_y'"):
        expand_tasks(["mmlu_y"], CATALOG)


def test_override_yaml_includes_upstream_and_replaces_only_the_data() -> None:
    overrides = {"hails/mmlu_no_train:a": {"dev": "/d/a_dev.jsonl", "test": "/d/a_test.jsonl"}}
    files = render_override_tasks(["mmlu_x"], CATALOG, overrides)
    assert list(files) == ["mmlu_x_a.yaml"]  # b has no override: lm-eval reads it from the Hub cache
    cfg = yaml.safe_load(files["mmlu_x_a.yaml"])
    assert cfg == {
        "include": "/upstream/a.yaml",
        "task": "mmlu_x_a",
        "tag": [],  # no partial tag lists that would replace lm-eval's built-in ones
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"dev": "/d/a_dev.jsonl", "test": "/d/a_test.jsonl"}},
    }


def test_override_must_provide_the_splits_the_task_reads() -> None:
    with pytest.raises(ConfigError) as err:
        render_override_tasks(["mmlu_x_a"], CATALOG, {"hails/mmlu_no_train:a": {"test": "/t"}})
    assert "dev" in err.value.message
    hs = {"Rowan/hellaswag": {"validation": "/v"}}
    assert render_override_tasks(["hs"], CATALOG, hs)  # 0-shot: no few-shot pool needed
    with pytest.raises(ConfigError, match="train"):
        render_override_tasks(["hs"], CATALOG, hs, num_fewshot=10)  # few-shot pool: the training split
    assert render_override_tasks(["gsm"], CATALOG, {"openai/gsm8k:main": {"test": "/t"}})  # inline few-shot


def test_write_override_tasks_replaces_stale_files(tmp_path: Path) -> None:
    (tmp_path / "old.yaml").write_text("task: old\n")
    write_override_tasks({"new.yaml": "task: new\n"}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.yaml"]


def test_task_entry_from_config() -> None:
    cfg = {
        "task": "t",
        "dataset_path": "TAUR-Lab/MuSR",
        "test_split": "murder_mysteries",
        "output_type": "x",
        "fewshot_config": {"sampler": "first_n", "samples": [{}]},
        "num_fewshot": 0,
    }
    entry = task_entry_from_config("t", "task", UP / "t.yaml", cfg)
    assert entry.dataset == DatasetRef("TAUR-Lab/MuSR") and entry.splits == {"test_split": "murder_mysteries"}
    assert entry.fewshot_samples and entry.num_fewshot == 0


def test_punkt_tab_for_ifeval(tmp_path: Path) -> None:
    root = ensure_punkt_tab(tmp_path)
    files = sorted(p.name for p in (root / "tokenizers" / "punkt_tab" / "english").iterdir())
    assert files == ["abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt"]
    ensure_punkt_tab(tmp_path)  # idempotent


# ---------------------------------------------------------------------------------------------- shipped demo data

# Field names and types of the Hub datasets the upstream task YAMLs read (what their doc_to_text / process_docs use).
SCHEMAS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hails/mmlu_no_train": {"question": str, "subject": str, "choices": list, "answer": int},
    "allenai/ai2_arc": {"id": str, "question": str, "choices": dict, "answerKey": str},
    "openai/gsm8k": {"question": str, "answer": str},
    "Rowan/hellaswag": {
        "ind": int,
        "activity_label": str,
        "ctx_a": str,
        "ctx_b": str,
        "ctx": str,
        "endings": list,
        "source_id": str,
        "split": str,
        "split_type": str,
        "label": str,
    },
    "allenai/winogrande": {"sentence": str, "option1": str, "option2": str, "answer": str},
    "truthfulqa/truthful_qa": {"question": str, "mc1_targets": dict, "mc2_targets": dict},
    "wis-k/instruction-following-eval": {"key": int, "prompt": str, "instruction_id_list": list, "kwargs": list},
    "SaylorTwift/bbh": {"input": str, "target": str},
    "DigitalLearningGmbH/MATH-lighteval": {"problem": str, "level": str, "type": str, "solution": str},
    "Idavidrein/gpqa": {
        "Question": str,
        "Correct Answer": str,
        "Incorrect Answer 1": str,
        "Incorrect Answer 2": str,
        "Incorrect Answer 3": str,
    },
    "TAUR-Lab/MuSR": {"narrative": str, "question": str, "choices": str, "answer_index": int, "answer_choice": str},
    "TIGER-Lab/MMLU-Pro": {
        "question_id": int,
        "question": str,
        "options": list,
        "answer": str,
        "answer_index": int,
        "cot_content": str,
        "category": str,
        "src": str,
    },
}


def _demo_entries() -> dict:
    return yaml.safe_load(DEMO_DATA.read_text())


def test_demo_data_files_exist_and_follow_the_hub_schemas() -> None:
    overrides = resolve_overrides(_demo_entries(), REPO)
    assert overrides
    for dataset_id, splits in overrides.items():
        schema = SCHEMAS[DatasetRef.parse(dataset_id).path]
        for split, file in splits.items():
            rows = [json.loads(line) for line in Path(file).read_text().splitlines() if line.strip()]
            assert rows, f"{dataset_id} {split} is empty"
            for row in rows:
                for key, typ in schema.items():
                    assert isinstance(row.get(key), typ), f"{file}: field {key!r} should be {typ}"


def test_demo_few_shot_pools_are_large_enough() -> None:
    overrides = resolve_overrides(_demo_entries(), REPO)

    def count(dataset_id: str, split: str) -> int:
        return len(Path(overrides[dataset_id][split]).read_text().splitlines())

    # lm-eval's default sampler draws n+1 documents (it removes the evaluated one); first_n takes the first n
    assert count("Rowan/hellaswag", "train") >= 11
    assert count("allenai/winogrande:winogrande_xl", "train") >= 6
    assert all(
        count(f"hails/mmlu_no_train:{s}", "dev") >= 5 for s in ("astronomy", "high_school_geography", "world_religions")
    )
    assert count("TIGER-Lab/MMLU-Pro", "validation") >= 5


def test_prefetch_records_rows_and_content_hash_per_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub is the edge faked here: `load_dataset` returns a real DatasetDict built from the shipped GSM8K file."""
    import datasets
    import huggingface_hub

    from evalkit.benchmarks.lm_eval.offline import prefetch_datasets
    from evalkit.core.datasources import DatasetRef, content_hash, read_manifest_file, read_rows

    gsm8k = REPO / "data" / "openai" / "gsm8k" / "main" / "test.jsonl"
    loaded = datasets.DatasetDict({"test": datasets.Dataset.from_list(read_rows(gsm8k))})
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name, cache_dir=None: loaded)
    monkeypatch.setattr(
        huggingface_hub.HfApi, "dataset_info", lambda self, repo: type("Info", (), {"sha": f"sha-of-{repo}"})()
    )
    manifest = tmp_path / "datasets_manifest.json"
    prefetch_datasets([DatasetRef("openai/gsm8k", "main")], manifest=manifest)
    prefetch_datasets([DatasetRef("other/set")], manifest=manifest)  # a later prefetch adds, never drops
    records = read_manifest_file(manifest)
    assert set(records) == {"openai/gsm8k:main", "other/set"}
    rec = records["openai/gsm8k:main"]
    assert rec.revision == "sha-of-openai/gsm8k"
    split = rec.splits["test"]
    assert (split.rows, split.sha256) == content_hash(read_rows(gsm8k)) and split.rows == 4


def test_adapter_prefetch_fetches_every_dataset_of_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.benchmarks.lm_eval import adapter as lm_eval_adapter

    fetched: list[str] = []
    monkeypatch.setattr(lm_eval_adapter, "prefetch_datasets", lambda refs: fetched.extend(r.id for r in refs))
    settings = {"runs": [{"name": "a", "tasks": ["mmlu_x"]}, {"name": "b", "tasks": ["gsm", "hs"]}]}
    lm_eval_adapter.LmEvalSuite(catalog=lambda: CATALOG).prefetch(settings)
    assert fetched == ["Rowan/hellaswag", "hails/mmlu_no_train:a", "hails/mmlu_no_train:b", "openai/gsm8k:main"]
