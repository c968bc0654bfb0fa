"""Running a sweep's jobs somewhere: the `Launcher` protocol (`base`), the launchers behind it, one subpackage each
(`local`: in this process; `slurm`: sbatch jobs), and `registry`, which finds the one a config names.

Beside them, what any launcher's sweep shares: `record` (jobs/<sweep>/slurm_jobs.json, the jobs a sweep submitted),
`estimate` (the cost before submission) and `plan_json` (the dry run as one JSON document). Nothing outside a
launcher's own package knows which launcher runs; the launchers do not import each other (.importlinter).
"""

from evalkit.launch.base import JobState, Launcher, Request, SweepJobs

__all__ = ["JobState", "Launcher", "Request", "SweepJobs"]
