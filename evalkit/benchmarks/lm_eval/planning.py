"""What the lm-eval family says of a suite before it runs (pure, apart from the doctor's cache lookups): the
datasets its tasks will read and the `lm-eval run` argv of each run, as the plan shows them (`evalkit sweep
--dry-run`), and the Hub datasets `evalkit doctor` finds missing from the cache.

The plan's catalog (lm-eval's task index) is the one the plan was given (`PlanContext.index`), None where lm-eval is
not installed: then every local data entry of the benchmark is listed as one that may apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.benchmarks.base import PlanContext
from evalkit.benchmarks.lm_eval import ruler, ruler_data
from evalkit.benchmarks.lm_eval.command import render_command
from evalkit.benchmarks.lm_eval.offline import TaskCatalog, datasets_for_tasks, expand_tasks
from evalkit.benchmarks.lm_eval.settings import parse_settings, validate_settings
from evalkit.core.config import DatasetOverride
from evalkit.core.datasources import resolve_overrides
from evalkit.util.hub_cache import hub_cached


def planned_sources(plan: PlanContext) -> list[dict[str, Any]]:
    """Each Hub dataset the tasks read, marked `local` with its files when the benchmark's own data overrides it;
    RULER's generated documents."""
    settings, overrides, catalog = plan.settings, plan.local_data, plan.index
    tasks = [t for run in settings.get("runs", []) for t in run.get("tasks", [])]
    if catalog is None:
        return [{"dataset": k, "source": "local (may apply)", "files": v} for k, v in sorted(overrides.items())]
    out: list[dict[str, Any]] = []
    refs = {catalog[t].dataset for t in expand_tasks(tasks, catalog) if catalog[t].dataset is not None}
    for ref in sorted(r for r in refs if r is not None):
        if ref.id in overrides:
            out.append({"dataset": ref.id, "source": "local", "files": overrides[ref.id]})
        else:
            out.append({"dataset": ref.id, "source": "hub"})
    if any(run.get("max_seq_lengths") for run in settings.get("runs", [])):
        # RULER builds its documents at load time; its essay and QA tasks read NVIDIA's files from here
        out.append({"dataset": "ruler", "source": "generated", "files": {"dir": settings.get("ruler_data_dir")}})
    return out


def describe(plan: PlanContext) -> dict[str, Any]:
    """lm-eval's argv per run, as the job renders it."""
    assert plan.work_dir is not None and plan.endpoint is not None, "describe needs the cell's folder and endpoint"
    parsed = parse_settings(plan.settings)
    runs = []
    for run in parsed.runs:
        root = plan.work_dir / "lm_eval" / run.name
        # the job writes override task YAMLs there when any apply: local data for one of the run's datasets,
        # RULER's offline document builders
        local = run.max_seq_lengths or _reads_local_data(plan.local_data, run.tasks, plan.index)
        argv = render_command(
            run,
            parsed,
            endpoint=plan.endpoint,
            output_dir=root / "output",
            include_path=root / "tasks" if local else None,
            seed=plan.seed,
            python=plan.python,
        )
        runs.append({"name": run.name, "argv": argv})
    return {"runs": runs}


def _reads_local_data(
    local: Mapping[str, Mapping[str, str]], tasks: Sequence[str], catalog: TaskCatalog | None
) -> bool:
    if catalog is None:  # cannot tell which datasets the tasks read: any override may apply
        return bool(local)
    return any((ref := catalog[t].dataset) is not None and ref.id in local for t in expand_tasks(tasks, catalog))


def missing_hub_datasets(
    settings: Mapping[str, Any],
    data: Mapping[str, DatasetOverride],
    where: str,
    hf_home: Path,
    catalog: TaskCatalog,
) -> list[str]:
    """Hub datasets of the suite's tasks that no local override serves and the cache lacks, and RULER's source files
    (essays, SQuAD, HotpotQA) that are missing."""
    parsed = validate_settings(dict(settings), None)
    # raises, naming the file, when an override's file is missing
    local = resolve_overrides(dict(data), where=where)
    tasks = [t for run in parsed.runs for t in run.tasks]
    refs = datasets_for_tasks(tasks, catalog)
    missing = [r.id for r in refs if r.id not in local and not hub_cached(hf_home, r.path, "dataset")]
    sources = ruler.data_needed(ruler.ruler_leaves(tasks, catalog))
    return missing + ruler_data.missing_or_wrong(Path(parsed.ruler_data_dir).resolve(), sources)
