"""The Slurm launcher: each model x format job an sbatch job (arrays per resources, a quantize job before the jobs
that need its checkpoint, an aggregate job after all), submitted with submitit.

Pure, tested without a cluster: `resources` (what a job asks for), `sbatch` (the script it becomes), `groups` (jobs
into arrays, quantize dependencies), `describe` (dry run and submission tables). At the edge, tested against the local
cluster of scripts/slurm (pytest marker `slurm`): `submit` (sbatch --test-only, refusals), `executor` and `submission`
(submission with submitit), `tasks` (what runs inside the jobs), `state` (squeue / sacct / scancel). `launcher` fills
the `Launcher` protocol with them.
"""

from evalkit.launch.slurm.launcher import LAUNCHER, SlurmLauncher

__all__ = ["LAUNCHER", "SlurmLauncher"]
