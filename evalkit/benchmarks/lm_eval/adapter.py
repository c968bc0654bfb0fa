"""lm-eval suites (Open LLM Leaderboard v1 and v2, RULER) as a benchmark adapter: the I/O shell.

A suite is a list of runs; each run is one `lm-eval run` command against the served model's OpenAI-compatible API,
with its own few-shot count, prompt format and context budget (the protocol's settings differ per task).
`generate` renders each run's argv (`command`, kept as the run's `command.sh`) and executes all of a suite's runs
in one harness process (`runner`: lm-eval starts once, not once per run), skipping runs an interrupted attempt
finished and resuming a half-done one from lm-eval's response cache (`progress`); `score` reads the runs' outputs
into records (`parse`) and applies the leaderboard's benchmark rows (`leaderboard`). RULER's own steps are calls
into `ruler`, `ruler_data` and `ruler_scores`.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from evalkit.benchmarks.base import (
    BenchmarkBase,
    BenchmarkResult,
    NodeContext,
    PlanContext,
    RunContext,
    data_check,
)
from evalkit.benchmarks.lm_eval import planning, ruler, ruler_data, ruler_scores, runner, tokens
from evalkit.benchmarks.lm_eval.command import render_command
from evalkit.benchmarks.lm_eval.leaderboard import promote_benchmarks
from evalkit.benchmarks.lm_eval.offline import (
    TaskCatalog,
    datasets_for_tasks,
    ensure_punkt_tab,
    load_task_catalog,
    prefetch_datasets,
    render_override_tasks,
    write_override_tasks,
)
from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs
from evalkit.benchmarks.lm_eval.progress import RunProgress, run_key
from evalkit.benchmarks.lm_eval.runner import BatchRun, read_status, write_batch
from evalkit.benchmarks.lm_eval.settings import (
    LmEvalRun,
    LmEvalSuiteSettings,
    check_settings,
    parse_settings,
    validate_settings,
)
from evalkit.core.checks import Check
from evalkit.core.datasources import DataSource, hub_source, local_source
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.core.records import Endpoint, SampleRecord, TaskScore
from evalkit.core.workload import CellWorkload
from evalkit.util.procs import die_with_parent, log_tail, stop_process_group

log = logging.getLogger("evalkit.lm_eval")


class LmEvalSuite(BenchmarkBase[LmEvalSuiteSettings]):
    """Benchmark adapter for lm-eval suites (adapter key `lm_eval`)."""

    chunks = True
    """Runs a chunk of its documents (`RunContext.samples`: lm-eval's `--samples`, the same prompts as a full run)."""
    concurrency_key = "num_concurrent"
    sections: ClassVar[Mapping[str, str]] = {
        "leaderboard_v1": "academic",
        "leaderboard_v2": "academic",
        "ruler": "long-context",
    }

    def __init__(
        self,
        catalog: Callable[[], TaskCatalog] = load_task_catalog,
        python: str = sys.executable,
    ) -> None:
        self._catalog = catalog
        """Loads lm-eval's task index (slow: ~10 s); injectable for tests."""
        self._python = python
        """Interpreter that has lm-eval (the running one by default)."""

    def parse_settings(self, settings: Mapping[str, Any]) -> LmEvalSuiteSettings:
        return parse_settings(settings)

    def validate(self, settings: dict[str, Any]) -> None:
        validate_settings(settings, self._catalog())

    def planning_index(self) -> TaskCatalog | None:
        """lm-eval's task index (which dataset each task reads), or None where lm-eval is not installed."""
        try:
            return self._catalog()
        except ImportError:
            return None

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        return planning.planned_sources(plan)

    def describe(self, plan: PlanContext) -> dict[str, Any]:
        return planning.describe(plan)

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload:
        return tokens.workload(settings)

    def node_checks(self, settings: dict[str, Any], node: NodeContext) -> list[Check]:
        """The data row: the settings, then the Hub datasets of the tasks in the cache and RULER's files."""
        row = data_check(node.benchmark, lambda: self.validate(settings))
        if not row.ok:
            return [row]
        where = f"benchmarks.{node.benchmark}.data"
        missing = planning.missing_hub_datasets(settings, node.data, where, node.hf_home, self._catalog())
        if not missing:
            return [row]
        problem = f"not in the cache {node.hf_home}: {', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}"
        fix = f"run `evalkit prefetch` on a machine with internet ({len(missing)} dataset(s))"
        return [Check(row.name, False, problem, fix)]

    def generate(self, ctx: RunContext[LmEvalSuiteSettings]) -> None:
        settings = ctx.settings
        check_settings(settings, None)
        endpoint = ctx.endpoint
        if endpoint is None:
            raise BenchmarkError("lm_eval generate needs a served model, but the run context has no endpoint")
        _check_context(settings, endpoint)
        root = ctx.work_dir / "lm_eval"
        long_context = any(run.max_seq_lengths for run in settings.runs)
        catalog = self._catalog() if ctx.data_overrides or long_context else None
        env = self._env(ctx, root)
        batch: list[BatchRun] = []
        done = cached = 0
        runs = settings.runs if ctx.samples is None else _chunk_runs(settings.runs, ctx.samples)
        for run in runs:
            files = RunFiles(root / run.name)
            overrides = _task_overrides(run, settings, catalog, ctx.data_overrides) if catalog is not None else {}
            argv = render_command(
                run,
                settings,
                endpoint=endpoint,
                output_dir=files.dir / "output",
                include_path=files.dir / "tasks" if overrides else None,
                seed=ctx.seed,
                python=self._python,
                samples=None if ctx.samples is None else {t: ctx.samples[t] for t in run.tasks},
            )
            progress = None
            if ctx.progress_dir is not None:
                progress = RunProgress.of(ctx.progress_dir, run.name, run_key(argv, overrides))
                if progress.is_done(files.dir):
                    done += 1
                    continue
                cached += progress.cached_requests()
            # a fresh folder for a run not done: `score` must never read a previous attempt's partial results
            shutil.rmtree(files.dir, ignore_errors=True)
            files.dir.mkdir(parents=True)
            if overrides:
                write_override_tasks(overrides, files.dir / "tasks")
            # command.sh reproduces the run by hand; the response cache is how this job resumes, not part of the run
            files.command.write_text(shlex.join(argv) + "\n", encoding="utf-8")
            if progress is not None:
                argv = [*argv, "--use_cache", str(progress.cache)]
            batch.append(BatchRun(run.name, argv, files.dir, files.log, files.dir / "status.json", progress))
        if done or cached:
            log.info(
                "    resuming %s: %d of %d runs done, %d cached requests",
                ctx.work_dir.name,
                done,
                len(runs),
                cached,
            )
        if not batch:
            return
        log.info(
            "    lm-eval: %d run(s) in one harness process: %s (logs: %s/<run>/lm_eval.log)",
            len(batch),
            ", ".join(r.name for r in batch),
            root,
        )
        t0 = time.monotonic()
        _run_batch(batch, root, env, self._python)
        log.info("    lm-eval runs finished in %.0f s", time.monotonic() - t0)

    def score(self, ctx: RunContext[LmEvalSuiteSettings]) -> BenchmarkResult:
        settings = ctx.settings
        scores: list[TaskScore] = []
        samples: list[SampleRecord] = []
        for run in settings.runs if ctx.samples is None else _chunk_runs(settings.runs, ctx.samples):
            files = RunFiles(ctx.work_dir / "lm_eval" / run.name)
            s, r = read_run_outputs(files)
            scores += s
            samples += r
        # one set of RULER rows for the suite, whichever runs its tasks and lengths were split into
        scores += ruler_scores.ruler_scores(samples)
        return BenchmarkResult(scores=promote_benchmarks(scores), samples=samples)

    def data_sources(self, ctx: RunContext[LmEvalSuiteSettings]) -> list[DataSource]:
        """Every Hub dataset the runs' tasks read (the task index says which): the local files where the benchmark
        overrides it, else the Hub id with the prefetched revision; and RULER's source files."""
        settings = ctx.settings
        check_settings(settings, None)
        tasks = [t for run in settings.runs for t in run.tasks]
        catalog = self._catalog()
        out: list[DataSource] = []
        for ref in datasets_for_tasks(tasks, catalog):
            files = ctx.data_overrides.get(ref.id)
            if files:
                out += [local_source(ref.id, path, split) for split, path in sorted(files.items())]
            else:
                out.append(hub_source(ref.id, ctx.hub_revisions.get(ref.id)))
        return out + ruler_data.data_sources(tasks, catalog, Path(settings.ruler_data_dir).resolve())

    def prefetch(self, settings: dict[str, Any]) -> None:
        """Cache the Hub datasets of every task of every run (needs internet; HF_HOME picks the cache), and the
        source files of RULER's essay and QA tasks."""
        parsed = validate_settings(settings, None)
        catalog = self._catalog()
        tasks = [t for run in parsed.runs for t in run.tasks]
        prefetch_datasets(datasets_for_tasks(tasks, catalog))
        sources = ruler.sources_for(tasks, catalog)
        if sources:
            ruler_data.prefetch(Path(parsed.ruler_data_dir).resolve(), sources, python=self._python)

    @staticmethod
    def _env(ctx: RunContext[LmEvalSuiteSettings], root: Path) -> dict[str, str]:
        env = {**os.environ, **ctx.env, "TOKENIZERS_PARALLELISM": "false"}
        # IFEval needs NLTK's punkt_tab; give lm-eval a local copy instead of a download
        nltk_dir = Path(env["NLTK_DATA"].split(os.pathsep)[0]) if env.get("NLTK_DATA") else root / "nltk_data"
        env["NLTK_DATA"] = str(ensure_punkt_tab(nltk_dir))
        return env


def _chunk_runs(runs: Sequence[LmEvalRun], samples: Mapping[str, Sequence[int]]) -> list[LmEvalRun]:
    """The runs a chunk needs: each run narrowed to its tasks that have documents in the chunk (a run without any is
    not started). A task of the chunk that no run holds is a planning error: it is refused, never silently dropped."""
    import dataclasses

    held = {t for run in runs for t in run.tasks}
    unknown = sorted(set(samples) - held)
    if unknown:
        raise ConfigError(
            f"adaptive chunk names tasks {unknown} that no run of the suite holds (runs hold {sorted(held)})",
            hint="adaptive mode chunks by the samples' task: suites whose samples name subtasks of another kind "
            "(RULER's task x length) cannot run adaptively yet",
        )
    out = []
    for run in runs:
        tasks = [t for t in run.tasks if samples.get(t)]
        if tasks:
            out.append(dataclasses.replace(run, tasks=tasks))
    return out


def _check_context(settings: LmEvalSuiteSettings, endpoint: Endpoint) -> None:
    """Every run's budget and RULER length must fit the server's context, before any run starts."""
    ruler.check_context([n for run in settings.runs for n in run.max_seq_lengths], endpoint.max_model_len)
    for run in settings.runs:
        if run.max_length > endpoint.max_model_len:
            raise ConfigError(
                f"run {run.name!r}: max_length {run.max_length} exceeds the server's max_model_len "
                f"{endpoint.max_model_len}",
                hint="start the server with a larger max_model_len (the model's config)",
            )


def _task_overrides(
    run: LmEvalRun, settings: LmEvalSuiteSettings, catalog: TaskCatalog, data_overrides: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The run's task overrides: local data files of the benchmark, and RULER documents built offline."""
    overrides = render_override_tasks(run.tasks, catalog, data_overrides, run.num_fewshot)
    if run.max_seq_lengths:
        data_dir = Path(settings.ruler_data_dir).resolve()
        overrides |= ruler_data.task_overrides(
            run.tasks, catalog, data_dir, run.demo_samples_per_length, run.apply_chat_template
        )
    return overrides


SHARED_PROCESS_ENV = "EVALKIT_LM_EVAL_SHARED_PROCESS"
"""Set to 0 to give each lm-eval run a harness process of its own (slower: lm-eval starts once per run): the way out
if a task ever misbehaves after another in a shared process, and what `bench.job_efficiency` compares against."""


def _run_batch(batch: list[BatchRun], root: Path, env: Mapping[str, str], python: str) -> None:
    """The runs in one harness process (`runner`), or one each (SHARED_PROCESS_ENV=0); a failure names the run and
    quotes the tail of its own log."""
    shared = env.get(SHARED_PROCESS_ENV, "1") != "0"
    for i, part in enumerate([batch] if shared else [[run] for run in batch]):
        _run_part(part, root, env, python, "" if shared else f"-{i + 1}")


def _run_part(batch: list[BatchRun], root: Path, env: Mapping[str, str], python: str, suffix: str) -> None:
    batch_file = root / f"batch{suffix}.json"
    write_batch(batch_file, batch)
    harness_log = root / f"harness{suffix}.log"
    code = _run_logged([python, "-m", runner.__name__, str(batch_file)], harness_log, env, cwd=root)
    for run in batch:
        status = read_status(run)
        if status is not None and status.exit == 0:
            log.info("    lm-eval run %s finished in %.0f s", run.name, status.seconds)
            continue
        why = (
            f"exited with code {status.exit}"
            if status is not None
            else f"did not finish (the harness process exited with code {code})"
        )
        tail = log_tail(run.log, 25) if run.log.exists() else log_tail(harness_log, 25)
        lost = lost_server(tail)
        if lost is not None:  # the server's death is reported once, by the job, with its cause: one line here
            raise BenchmarkError(
                f"lm-eval run {run.name!r} lost its server ({lost})",
                log=run.log,
                hint="the job's server error says why the server stopped (server.log)",
            )
        raise BenchmarkError(
            f"lm-eval run {run.name!r} {why}; last lines of its log:\n" + textwrap.indent(tail, "    "),
            log=run.log if run.log.exists() else harness_log,
            hint=f"fix the cause and rerun the cell; to reproduce by hand: bash {run.dir / 'command.sh'}",
        )
    if code != 0:
        raise BenchmarkError(
            f"the lm-eval harness process exited with code {code} after its runs; last lines of its log:\n"
            + textwrap.indent(log_tail(harness_log, 25), "    "),
            log=harness_log,
            hint="fix the cause and rerun the cell",
        )


LOST_SERVER = re.compile(r"Cannot connect to host \S+|Server disconnected|Connection refused|ServerDisconnectedError")
"""What aiohttp (lm-eval's API client) says when the server is gone."""


def lost_server(log_text: str) -> str | None:
    """The connection error a run's log ends with when its server went away (None otherwise)."""
    found = LOST_SERVER.findall(log_text)
    return found[-1] if found else None


def _run_logged(argv: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path) -> int:
    """Run argv with stdout+stderr to `log`; kill its whole process group if we are interrupted."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # a harness orphaned by kill -9 would keep writing into the cell's folder
        )
        try:
            return proc.wait()
        except BaseException:
            stop_process_group(proc, 10.0)
            raise
