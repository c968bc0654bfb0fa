"""lm-eval's output as evalkit records: results JSON -> TaskScore, samples JSONL -> SampleRecord.

lm-eval's quirks ("acc,none" keys, 0-1 scales, "N/A" for a missing number) are converted here, once. The parsers are
pure; `read_run_outputs` reads one run's output folder (`RunFiles`) with them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.benchmarks.lm_eval import ruler_scores
from evalkit.benchmarks.lm_eval.leaderboard import (
    ifeval_strict,
    is_proportion,
    normalize_v2,
    primary_metric,
    v2_num_choices,
    with_group_normalization,
)
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.util.files import read_jsonl


def _number(value: Any) -> float | None:
    """lm-eval writes "N/A" (or null, or NaN) where it has no number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    return None


def _filter_label(filt: str, task_filters: set[str]) -> str:
    """TaskScore.filter: "" when the task has a single answer-extraction variant (or lm-eval's "none")."""
    return "" if filt == "none" or len(task_filters) <= 1 else filt


def metric_key(metric: str, filt: str) -> str:
    """Per-sample metric name: "metric" or "metric,filter" (filter as in `TaskScore.filter`)."""
    return f"{metric},{filt}" if filt else metric


def parse_results(results: Mapping[str, Any]) -> list[TaskScore]:
    """TaskScores from one lm-eval results JSON (pure).

    One row per task x metric x filter, values as percentages, one `is_primary` row per task. Group rows lm-eval
    emits (e.g. leaderboard_bbh, mmlu_llama) are kept with `is_primary=False`: they are lm-eval's size-weighted
    aggregates, and for the v2 benchmark groups `normalized` holds the leaderboard's benchmark score.
    """
    blocks: Mapping[str, Mapping[str, Any]] = results.get("results", {})
    group_members: Mapping[str, list[str]] = results.get("group_subtasks", {})
    n_samples = {t: int(v.get("effective", v.get("original", 0))) for t, v in results.get("n-samples", {}).items()}
    higher = results.get("higher_is_better", {})

    def leaf_count(name: str) -> int:
        if name not in group_members:
            return n_samples.get(name, 0)
        return sum(leaf_count(m) for m in group_members.get(name, []))

    rows: list[TaskScore] = []
    for task, block in blocks.items():
        n = leaf_count(task)
        rows += _task_rows(task, block, n, is_group=task in group_members, higher=higher.get(task, {}))
        if task == "leaderboard_ifeval":
            prompt_level = _number(block.get("prompt_level_strict_acc,none"))
            rows.append(ifeval_strict(task, prompt_level, _number(block.get("inst_level_strict_acc,none")), n))
    return with_group_normalization(rows, group_members)


_Metric = tuple[str, str, float | None, float | None]
"""(metric, lm-eval filter, value, stderr) of one "metric,filter" key of a results block, on lm-eval's scale."""


def _metrics(block: Mapping[str, Any]) -> list[_Metric]:
    out: list[_Metric] = []
    for key, value in block.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, filt = key.split(",", 1)
        out.append((metric, filt, _number(value), _number(block.get(f"{metric}_stderr,{filt}"))))
    return out


def _task_rows(
    task: str, block: Mapping[str, Any], n: int, *, is_group: bool, higher: Mapping[str, Any]
) -> list[TaskScore]:
    """The rows of one task's (or group's) results block; its primary metric as the leaderboard table says."""
    raw = _metrics(block)
    filters_per_metric: dict[str, set[str]] = defaultdict(set)
    for metric, filt, _, _ in raw:
        filters_per_metric[metric].add(filt)
    primary = None if is_group else primary_metric(task)
    if primary is None and not is_group and raw:
        primary = (raw[0][0], raw[0][1])  # a task outside the table: lm-eval's first metric
    choices = v2_num_choices(task)
    rows = []
    for metric, filt, value, stderr in raw:
        scale = 100.0 if is_proportion(metric) else 1.0
        value = None if value is None else value * scale
        is_primary = primary == (metric, filt)
        normalized = normalize_v2(value, choices) if is_primary and choices is not None and value is not None else None
        rows.append(
            TaskScore(
                task=task,
                metric=metric,
                value=value,
                stderr=None if stderr is None else stderr * scale,
                n_samples=n,
                filter=_filter_label(filt, filters_per_metric[metric]),
                higher_is_better=bool(higher.get(metric, True)),
                normalized=normalized,
                is_primary=is_primary,
            )
        )
    return rows


def parse_samples(task: str, lines: Iterable[Mapping[str, Any]]) -> list[SampleRecord]:
    """SampleRecords from one lm-eval samples JSONL (pure): one per document, all filters' metrics merged."""
    by_doc: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for line in lines:
        by_doc[int(line["doc_id"])].append(line)
    filters = {str(line.get("filter", "none")) for doc_lines in by_doc.values() for line in doc_lines}
    primary = primary_metric(task)
    records = []
    for doc_id in sorted(by_doc):
        doc_lines = by_doc[doc_id]
        metrics: dict[str, float] = {}
        for line in doc_lines:
            filt = _filter_label(str(line.get("filter", "none")), filters)
            for metric in line.get("metrics", []):
                value = _sample_value(line.get(metric))
                if value is not None:
                    metrics[metric_key(metric, filt)] = value
        main = next((ln for ln in doc_lines if primary and ln.get("filter") == primary[1]), doc_lines[0])
        records.append(
            SampleRecord(
                task=task,
                doc_id=doc_id,
                prompt_hash=str(main.get("prompt_hash", "")),
                target=_text(main.get("target")),
                response=_response(main),
                metrics=metrics,
            )
        )
    return records


def _sample_value(value: Any) -> float | None:
    """Per-sample metric as a number on lm-eval's own scale; IFEval's per-instruction lists become their mean."""
    if isinstance(value, list):
        nums = [v for v in (_number(x) for x in value) if v is not None]
        return sum(nums) / len(nums) if nums else None
    return _number(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _response(line: Mapping[str, Any]) -> str:
    """Generation: the filtered answer. Log-likelihood: JSON of the log-likelihoods, their argmax and the options."""
    filtered = line.get("filtered_resps")
    if isinstance(filtered, list) and filtered and isinstance(filtered[0], list):
        lls = [float(r[0]) for r in filtered]
        args = line.get("arguments", {})
        options = [str(a.get("arg_1", "")).strip() for a in args.values()] if isinstance(args, Mapping) else []
        out: dict[str, Any] = {"argmax": max(range(len(lls)), key=lls.__getitem__), "loglikelihoods": lls}
        # multiple-input tasks (winogrande) score one continuation after several contexts: no options to list
        if len(set(options)) == len(lls):
            out["choices"] = options
        return json.dumps(out, ensure_ascii=False)
    if isinstance(filtered, list) and len(filtered) == 1:
        filtered = filtered[0]
    return _text(filtered)


# ============================================================================================= a run's output folder


@dataclass(frozen=True)
class RunFiles:
    """Where one run's outputs live under the cell's work dir."""

    dir: Path

    @property
    def log(self) -> Path:
        return self.dir / "lm_eval.log"

    @property
    def command(self) -> Path:
        return self.dir / "command.sh"

    def results(self) -> Path | None:
        """The newest results JSON lm-eval wrote (it nests them in a folder named after the model)."""
        found = sorted(self.dir.glob("**/results_*.json"), key=lambda p: p.name)
        return found[-1] if found else None


def read_run_outputs(files: RunFiles) -> tuple[list[TaskScore], list[SampleRecord]]:
    """Scores and samples of one run from its output folder. RULER tasks give samples only: their score rows are
    made for the whole suite (`LmEvalSuite.score`)."""
    results_path = files.results()
    if results_path is None:
        raise BenchmarkError(
            f"no lm-eval results under {files.dir}",
            log=files.log,
            hint="the generate phase did not finish for this run; rerun the cell",
        )
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"unreadable lm-eval results {results_path}: {exc}", log=files.log) from exc
    # RULER rows come from the documents' scores, over the whole suite (see `LmEvalSuite.score`)
    scores = parse_results(ruler_scores.without_ruler(results))
    stamp = results_path.stem.removeprefix("results_")
    groups = set(results.get("group_subtasks", {}))
    samples: list[SampleRecord] = []
    for task in results.get("results", {}):
        if task in groups:
            continue
        path = results_path.parent / f"samples_{task}_{stamp}.jsonl"
        if not path.is_file():
            raise BenchmarkError(f"lm-eval wrote no samples file for task {task!r} ({path})", log=files.log)
        records = parse_samples(task, (row for _, row in read_jsonl(path)))
        samples += ruler_scores.ruler_samples(task, records)
    return scores, samples
