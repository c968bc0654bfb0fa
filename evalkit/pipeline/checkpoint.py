"""Produce one job's checkpoint and nothing else: the quantize step of a Slurm sweep runs it as its own job, ahead
of the evaluation job that needs it, and a user can run it by hand:

    python -m evalkit.pipeline.checkpoint model=smollm2-135m-instruct format=fp8 [--job-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from evalkit.checkpoints.resolve import resolve_checkpoint
from evalkit.core.errors import EvalkitError
from evalkit.pipeline.compose import compose_job
from evalkit.pipeline.plan import job_dir_of, typed


def main(argv: Sequence[str] | None = None) -> int:
    """Produce (or find in the cache) the checkpoint of one model x format and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m evalkit.pipeline.checkpoint",
        description="Produce the checkpoint of one model x format (convert / quantize, cached) and print its path.",
    )
    parser.add_argument("--job-dir", type=Path, help="where the stage logs go (default: the job's folder)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides selecting the model and format")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        cfg = typed(compose_job(args.overrides))
        job_dir = args.job_dir or job_dir_of(cfg)
        job_dir.mkdir(parents=True, exist_ok=True)
        print(resolve_checkpoint(cfg, job_dir), flush=True)
    except EvalkitError as err:
        print(f"evalkit: error: {err.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
