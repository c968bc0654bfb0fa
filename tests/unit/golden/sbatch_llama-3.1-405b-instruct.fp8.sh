#!/bin/bash

# Parameters
#SBATCH --account=llm-eval
#SBATCH --cpus-per-task=64
#SBATCH --error=/opt/evalkit/jobs/study/.submitit/%j/%j_0_log.err
#SBATCH --gres=gpu:h100:8
#SBATCH --job-name=evalkit.study
#SBATCH --mem=1000GB
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --open-mode=append
#SBATCH --output=/opt/evalkit/jobs/study/.submitit/%j/%j_0_log.out
#SBATCH --partition=gpu
#SBATCH --qos=normal
#SBATCH --signal=USR2@120
#SBATCH --time=1440
#SBATCH --wckey=submitit

# setup
source /opt/evalkit/.venv/bin/activate

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /opt/evalkit/jobs/study/.submitit/%j/%j_%t_log.out --error /opt/evalkit/jobs/study/.submitit/%j/%j_%t_log.err /opt/evalkit/.venv/bin/python -u -m submitit.core._submit /opt/evalkit/jobs/study/.submitit/%j
