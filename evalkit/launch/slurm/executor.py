"""submitit executors for evalkit's Slurm jobs, built from the same parameters `render_sbatch` renders.

evalkit submits with submitit's `SlurmExecutor` itself rather than through Hydra's submitit launcher: the launcher
builds one executor per sweep (so every job gets the same resources), cannot pass a dependency, and blocks until all
jobs end. Here each job array gets its own executor with its own resources and dependency, and `submit` returns as
soon as sbatch has answered.
"""

from __future__ import annotations

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from submitit import SlurmExecutor

from evalkit.launch.slurm.sbatch import sbatch_parameters


def slurm_executor(conf: SlurmQueueConf, *, dependency: str | None = None) -> SlurmExecutor:
    """An executor that submits with `conf` (resources, site settings, folder) and `dependency` (sbatch syntax).

    Jobs run this process's interpreter (submitit's default; it also ignores any other for arrays).
    `conf.max_num_timeout` bounds how often a job is requeued after its time limit (preemptions do not count, as in
    submitit).
    """
    executor = SlurmExecutor(folder=conf.submitit_folder, max_num_timeout=conf.max_num_timeout)
    # map_count is submitit's own (it sets it for arrays); everything else is what render_sbatch renders
    executor.update_parameters(**sbatch_parameters(conf, dependency=dependency))
    return executor
