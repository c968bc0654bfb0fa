"""The sbatch script of a job of a Slurm sweep, rendered without a cluster.

Pure: no process, no file, no look at the machine. It takes the launcher's own schema (`SlurmQueueConf`, what
`hydra.launcher` holds under `launcher=slurm`) and maps it to sbatch options as Hydra's submitit launcher does
(hydra_submitit_launcher 1.2.0 `BaseSubmititLauncher.launch` -> submitit `AutoExecutor` -> `SlurmExecutor`), then calls
submitit's own `_make_sbatch_string`. evalkit's own submission (`evalkit.launch.slurm.executor`) hands the same
parameters to submitit's `SlurmExecutor`, so the script a dry run prints and `sbatch --test-only` checks is the one
submitted. A golden file of the result shows what a submitit upgrade changes in the scripts users' jobs run with, and
`tests/slurm` checks it against the file submitit really writes.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import PurePosixPath
from typing import Any

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from submitit.slurm.slurm import SlurmExecutor, _convert_mem, _make_sbatch_string

from evalkit.core.errors import ConfigError

# Keys the launcher consumes itself (executor construction), not sbatch options.
_EXECUTOR_KEYS = frozenset({"_target_", "submitit_folder", "max_num_timeout"})
# The launcher passes BaseQueueConf's keys unprefixed, as submitit's generic parameters (renamed below by
# SlurmExecutor's equivalence table, e.g. timeout_min -> time); every other key is Slurm-specific and kept as is.
_GENERIC_KEYS = frozenset(f.name for f in dataclasses.fields(BaseQueueConf)) - {"submitit_folder"}
_RENAMED: dict[str, str] = {k: str(v) for k, v in (SlurmExecutor._equivalence_dict() or {}).items()}


def submit_command(python: str, folder: str) -> str:
    """The command line inside the script that runs the pickled job (SlurmExecutor._submitit_command_str)."""
    return " ".join([python, "-u -m submitit.core._submit", shlex.quote(folder)])


def sbatch_parameters(conf: SlurmQueueConf, *, array_size: int = 1, dependency: str | None = None) -> dict[str, Any]:
    """The keyword arguments the submit path hands to `_make_sbatch_string` (minus command and folder).

    `array_size` > 1: the launcher submitted that many jobs at once, which submitit turns into one job array.
    `dependency`: sbatch's --dependency ("afterok:12_0"). Such a job is also killed when its dependency can never
    be satisfied (the job it waits for failed), instead of staying PENDING forever.
    """
    if array_size < 1:
        raise ConfigError(f"array_size={array_size}: a submission has at least one job")
    params: dict[str, Any] = {}
    for f in dataclasses.fields(conf):
        value = getattr(conf, f.name)
        # submitit treats None as "not set" (no #SBATCH line)
        if f.name in _EXECUTOR_KEYS or value is None:
            continue
        if f.name in _GENERIC_KEYS:
            if f.name == "mem_gb":
                params["mem"] = _convert_mem(value)
            else:
                params[_RENAMED.get(f.name, f.name)] = value
        else:
            params[f.name] = dict(value) if f.name == "additional_parameters" else value
    if isinstance(params.get("setup"), tuple | list):
        params["setup"] = list(params["setup"])
    if dependency:
        params["dependency"] = dependency
        params["additional_parameters"] = {**params.get("additional_parameters", {}), "kill-on-invalid-dep": "yes"}
    if array_size > 1:
        params["map_count"] = array_size
    if conf.nodes > 1:
        # A multi-node job runs evalkit once: submitit's srun would start one copy per task (one per node), and the
        # copies would serve the model twice and write the same cells. One task, on the allocation's first node,
        # starts the Ray cluster over the others (evalkit/serve/ray_cluster.sh). `--ntasks=1` in #SBATCH instead
        # would make sbatch shrink the job to one node ("can't run 1 processes on 2 nodes, setting nnodes to 1").
        params["srun_args"] = [*params.get("srun_args", []), "--nodes=1", "--ntasks=1"]
    return params


def render_sbatch(conf: SlurmQueueConf, *, python: str, array_size: int = 1, dependency: str | None = None) -> str:
    """The sbatch script for `conf`, as submitit would write it to `<submitit_folder>/<job id>_submission.sh`.

    `conf.submitit_folder` must be absolute: submitit absolutizes a relative folder against the current directory,
    which would make the script depend on where it was rendered. `python` is the interpreter the job runs
    (submitit uses the submitting process's `sys.executable`).
    """
    unresolved = [f.name for f in dataclasses.fields(conf) if "${" in str(getattr(conf, f.name))]
    if unresolved:
        raise ConfigError(
            f"launcher fields {', '.join(unresolved)} hold unresolved interpolations",
            hint="resolve the config first (OmegaConf.to_object), or set them explicitly",
        )
    folder = PurePosixPath(conf.submitit_folder)
    if not folder.is_absolute():
        raise ConfigError(
            f"submitit_folder {conf.submitit_folder!r} is relative",
            hint="pass an absolute folder; submitit would resolve it against the current directory",
        )
    params = sbatch_parameters(conf, array_size=array_size, dependency=dependency)
    return _make_sbatch_string(command=submit_command(python, str(folder)), folder=str(folder), **params)
